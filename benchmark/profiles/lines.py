"""Profile files: a JSON header line, then one JSON object per row, xz-compressed (standard library only,
so that a generation worker needs nothing of the suite beyond torch and transformers)."""

from __future__ import annotations

import json
import lzma
from collections.abc import Iterable
from pathlib import Path
from typing import Any

JOBS_FORMAT = "seqrec-kd-profile-jobs/1"
RESULTS_FORMAT = "seqrec-kd-profile-results/1"
PUBLISHED_FORMAT = "seqrec-kd-profiles/1"


def write_lines(path: Path, header: dict[str, Any], rows: Iterable[dict[str, Any]]) -> None:
    """A header object, then one JSON object per row, xz-compressed."""
    with lzma.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(header, sort_keys=True) + "\n")
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def read_lines(path: Path, expected_format: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and rows of a file written by `write_lines`; the error names the file and what is wrong."""
    try:
        with lzma.open(path, "rt", encoding="utf-8") as handle:
            header, *rows = (json.loads(line) for line in handle)
    except (OSError, lzma.LZMAError, json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not a readable profile file ({error})") from None
    if header.get("format") != expected_format:
        raise ValueError(f"{path}: format is {header.get('format')!r}, expected {expected_format!r}")
    return header, rows


def published_files(directory: Path | None) -> list[Path]:
    """The published profile files of `directory` (none if it is unset or absent), in name order."""
    return sorted(directory.glob("*.jsonl.xz")) if directory is not None and directory.is_dir() else []
