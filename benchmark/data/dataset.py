"""Loading a dataset end to end: files -> parsed frames -> the canonical `Interactions` log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import paths
from benchmark.data.acquire import resolve_files
from benchmark.data.preprocess import PreprocessConfig, clean, dense_ids
from benchmark.data.registry import get_spec
from benchmark.data.spec import DatasetSpec, Domain
from benchmark.errors import DataError


@dataclass(frozen=True)
class Interactions:
    """The canonical event log of one dataset after preprocessing.

    Rows are ordered by (user, timestamp, original row order). Users are 0..n_users-1; items are
    1..n_items with 0 reserved for padding. `offsets` delimits each user's rows (CSR):
    user u owns rows offsets[u]:offsets[u+1]. `item_text` has one row per dense item id (index).
    """

    name: str
    domain: Domain
    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    rating: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_text: pd.DataFrame
    fingerprint: str

    @property
    def n_users(self) -> int:
        """Number of users."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of real items (ids 1..n_items); score vectors have n_items + 1 columns."""
        return len(self.item_ids)

    @cached_property
    def offsets(self) -> np.ndarray:
        """CSR boundaries of each user's rows."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.user, minlength=self.n_users))]).astype(np.int64)

    def frame(self) -> pd.DataFrame:
        """The log as a DataFrame (user, item, timestamp[, rating]) in canonical order."""
        columns = {"user": self.user, "item": self.item, "timestamp": self.timestamp}
        if self.rating is not None:
            columns["rating"] = self.rating
        return pd.DataFrame(columns)


def load_dataset(
    name_or_config: str | Path | dict | DatasetSpec,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    preprocessing: PreprocessConfig = PreprocessConfig(),
    download: bool = True,
) -> Interactions:
    """Resolve files (mirror, cache or download), parse, clean and index one dataset."""
    spec = name_or_config if isinstance(name_or_config, DatasetSpec) else get_spec(name_or_config)
    resolved = resolve_files(spec, paths.data_dir(data_dir), paths.cache_dir(cache_dir), download=download)
    raw = spec.load_interactions(resolved.paths)
    events = clean(raw, preprocessing, source=f"dataset '{spec.name}'")
    users, user_ids = dense_ids(events["user"], start=0)
    items, item_ids = dense_ids(events["item"], start=1)
    text = _align_item_text(spec, spec.load_item_text(resolved.paths), item_ids)
    key = json.dumps({"files": resolved.fingerprint, "preprocessing": preprocessing.as_dict()}, sort_keys=True)
    return Interactions(
        name=spec.name,
        domain=spec.domain,
        user=users,
        item=items,
        timestamp=events["timestamp"].to_numpy(np.int64),
        rating=events["rating"].to_numpy(np.float64) if "rating" in events else None,
        user_ids=user_ids,
        item_ids=item_ids,
        item_text=text,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
    )


def _align_item_text(spec: DatasetSpec, text: pd.DataFrame, item_ids: np.ndarray) -> pd.DataFrame:
    """Re-index item text by dense id; items without text keep missing fields (never dropped)."""
    if "item" not in text.columns:
        raise DataError(f"dataset '{spec.name}': item text has no 'item' column (columns: {list(text.columns)})")
    duplicated = text["item"].duplicated()
    if duplicated.any():
        raise DataError(f"dataset '{spec.name}': item text lists item {text['item'][duplicated].iloc[0]!r} twice")
    by_id = text.set_index("item")
    try:
        aligned = by_id.reindex(pd.Index(item_ids))
    except TypeError as error:
        raise DataError(f"dataset '{spec.name}': item ids in the item text do not match the interactions' "
                        f"id type ({error})") from None
    aligned.index = pd.RangeIndex(1, len(item_ids) + 1, name="item")
    aligned.insert(0, "original_id", item_ids)
    return aligned
