"""Dataset statistics: the numbers a reader checks before trusting any result on a dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.data.dataset import Interactions


def describe(log: Interactions) -> dict[str, object]:
    """Users, items, interactions, density, sequence-length quantiles, time range, item-text coverage."""
    lengths = np.diff(log.offsets)
    quantiles = np.quantile(lengths, [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0])
    text = log.item_text.drop(columns="original_id")
    return {
        "dataset": log.name,
        "domain": log.domain,
        "users": log.n_users,
        "items": log.n_items,
        "interactions": len(log.item),
        "density": len(log.item) / (log.n_users * log.n_items),
        "sequence_length": dict(zip(["min", "p25", "p50", "p75", "p90", "p99", "max"],
                                    (float(q) for q in quantiles))) | {"mean": float(lengths.mean())},
        "time_range": [pd.Timestamp(int(log.timestamp.min()), unit="s").isoformat(),
                       pd.Timestamp(int(log.timestamp.max()), unit="s").isoformat()],
        "distinct_timestamps_share": float(np.unique(log.timestamp).size / len(log.timestamp)),
        "item_text_coverage": {column: float(text[column].notna().mean()) for column in text.columns},
        "fingerprint": log.fingerprint,
    }


def format_description(stats: dict[str, object]) -> str:
    """Human-readable multi-line rendering of `describe`."""
    lengths = stats["sequence_length"]
    coverage = ", ".join(f"{k} {v:.0%}" for k, v in stats["item_text_coverage"].items()) or "none"
    return "\n".join([
        f"dataset        {stats['dataset']} ({stats['domain']}), fingerprint {stats['fingerprint']}",
        f"users          {stats['users']:,}",
        f"items          {stats['items']:,}",
        f"interactions   {stats['interactions']:,}",
        f"density        {stats['density']:.5f}",
        "seq. length    " + ", ".join(f"{k} {v:g}" for k, v in lengths.items() if k != "mean")
        + f", mean {lengths['mean']:.1f}",
        f"time range     {stats['time_range'][0]} .. {stats['time_range'][1]}",
        f"distinct ts    {stats['distinct_timestamps_share']:.1%} of interactions",
        f"item text      {coverage}",
    ])
