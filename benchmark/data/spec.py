"""The dataset specification: what files a dataset needs, where they come from, how to parse them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

Domain = Literal["movies", "products", "generic"]

# Parsers receive the resolved local path of every available file, keyed by DataFile.name.
Files = Mapping[str, Path]


@dataclass(frozen=True)
class DataFile:
    """One file a dataset reads.

    `name` is the file's name inside the dataset's mirror/cache folder. `url` is where to download it
    from; `https://host/archive.zip#folder/member` means "extract this member of that zip archive".
    `sha256` pins the content (None: not pinned; the computed hash is reported so it can be pinned).
    `path` is an explicit local file (used by the generic CSV dataset) that takes precedence over all.
    `folder` overrides the dataset's mirror folder for a file that lives beside it.
    """

    name: str
    sha256: str | None
    url: str | None = None
    optional: bool = False
    path: Path | None = None
    folder: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its files, its parsers and the domain that selects the prompt template later.

    `load_interactions` returns a frame with columns user, item, timestamp (int seconds) and
    optionally rating, in the file's original row order. `load_item_text` returns one row per item
    with column `item` plus text columns (title, year, genres, summary, ...).
    """

    name: str
    domain: Domain
    description: str
    files: tuple[DataFile, ...]
    load_interactions: Callable[[Files], pd.DataFrame]
    load_item_text: Callable[[Files], pd.DataFrame]
    folder: str | None = None

    @property
    def mirror_folder(self) -> str:
        """Folder name of this dataset inside a mirror or the download cache."""
        return self.folder or self.name
