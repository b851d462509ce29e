"""Non-neural floors: MostPop (whole training period) and RecentPop (last part of it).

Under a global temporal split the recent past predicts the near future far better than all-time
popularity, so every neural model must be compared with both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Popularity:
    """Scores every item by its interaction count in the fitted window; ignores the input sequence."""

    counts: torch.Tensor
    max_len: int = 1

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """Scores [B, n_items + 1] (identical rows); padding scores lowest."""
        return self.counts.expand(inputs.shape[0], -1)


def most_pop(items: np.ndarray, timestamps: np.ndarray, n_items: int) -> Popularity:
    """Popularity over all training interactions (`items`, `timestamps`: one entry per interaction)."""
    return _count(items, n_items)


def recent_pop(items: np.ndarray, timestamps: np.ndarray, n_items: int, window: float = 0.05) -> Popularity:
    """Popularity over the last `window` fraction of the training time range (0 < window <= 1)."""
    if not 0.0 < window <= 1.0:
        raise ValueError(f"recent_pop: window must be in (0, 1], got {window!r}")
    start = timestamps.max() - window * (timestamps.max() - timestamps.min())
    return _count(items[timestamps >= start], n_items)


def _count(items: np.ndarray, n_items: int) -> Popularity:
    counts = np.bincount(items, minlength=n_items + 1).astype(np.float32)
    counts[0] = -1.0
    return Popularity(torch.from_numpy(counts)[None, :])
