"""Raw interactions -> the canonical, filtered, ordered, densely indexed event log."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from benchmark.errors import DataError


@dataclass(frozen=True)
class PreprocessConfig:
    """Filtering settings. k-core thresholds apply iteratively until every user and item passes."""

    min_user_interactions: int = 5
    min_item_interactions: int = 5
    drop_consecutive_repeats: bool = False

    def __post_init__(self) -> None:
        for key in ("min_user_interactions", "min_item_interactions"):
            if getattr(self, key) < 1:
                raise ValueError(f"preprocessing: {key} must be >= 1, got {getattr(self, key)}")

    def as_dict(self) -> dict:
        """Plain-data form (enters cache and run keys)."""
        return asdict(self)


def clean(raw: pd.DataFrame, config: PreprocessConfig, *, source: str) -> pd.DataFrame:
    """Drop exact duplicates (and optionally consecutive repeats), apply k-core, order events.

    The result is sorted by (user, timestamp, original row order) — the original order breaks ties,
    which matters for day-resolution timestamps (Amazon) — and keeps column `row` = original row.
    """
    frame = raw.reset_index(drop=True).rename_axis("row").reset_index()
    frame = frame.drop_duplicates(subset=[c for c in frame.columns if c != "row"], keep="first")
    frame = frame.sort_values(["user", "timestamp", "row"], kind="stable")
    if config.drop_consecutive_repeats:
        same_user = frame["user"].eq(frame["user"].shift())
        frame = frame[~(same_user & frame["item"].eq(frame["item"].shift()))]
    frame = _k_core(frame, config.min_user_interactions, config.min_item_interactions)
    if frame.empty:
        raise DataError(f"{source}: no interactions left after filtering with {config.as_dict()} "
                        f"(raw rows: {len(raw)}); lower the k-core thresholds")
    return frame.reset_index(drop=True)


def _k_core(frame: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    while True:
        user_counts = frame["user"].map(frame["user"].value_counts())
        item_counts = frame["item"].map(frame["item"].value_counts())
        keep = (user_counts >= min_user) & (item_counts >= min_item)
        if keep.all():
            return frame
        frame = frame[keep]


def dense_ids(values: pd.Series, *, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to consecutive integers from `start`, in sorted order of the original ids.

    Returns (codes per row, original id per code - start).
    """
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64) + start, np.asarray(uniques)
