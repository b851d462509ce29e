"""Cheap quality signals for a set of profiles: length distribution, empty/duplicate rate, and how
often a profile names one of its user's most frequent genres/categories (a faithfulness proxy)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from benchmark.split import HistoryScope, Split


def top_labels(split: Split, scope: HistoryScope = "fit", column: str = "genres", top: int = 2
               ) -> dict[int, list[str]]:
    """Each user's `top` most frequent labels in their history (comma-separated column)."""
    text = split.log.item_text
    if column not in text:
        return {}
    histories = split.histories(scope)
    labels = text[column].reindex(histories["item"].to_numpy()).fillna("").str.split(", ")
    exploded = pd.DataFrame({"user": histories["user"].to_numpy(), "label": labels.to_numpy()}).explode("label")
    exploded = exploded[exploded["label"].astype(bool)]
    counts = exploded.value_counts(["user", "label"]).reset_index(name="n")
    counts = counts.sort_values(["user", "n", "label"], ascending=[True, False, True]).groupby("user").head(top)
    return counts.groupby("user")["label"].agg(list).to_dict()


def profile_stats(split: Split, texts: dict[int, str], missing: dict[int, str], scope: HistoryScope = "fit"
                  ) -> dict[str, object]:
    """Summary statistics of generated profiles."""
    values = list(texts.values())
    words = np.array([len(t.split()) for t in values]) if values else np.zeros(0)
    stats: dict[str, object] = {
        "profiles": len(values),
        "missing": len(missing),
        "missing_reasons": pd.Series(list(missing.values()), dtype=object).value_counts().to_dict(),
        "words": {q: float(np.quantile(words, p)) for q, p in
                  [("min", 0), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("max", 1)]} if len(words) else {},
        "duplicate_share": 1 - len(set(values)) / len(values) if values else 0.0,
    }
    labels = top_labels(split, scope)
    if labels:
        hits = [any(re.search(rf"\b{re.escape(label.lower().rstrip('s'))}", text.lower()) for label in labels[user])
                for user, text in texts.items() if user in labels]
        stats["mentions_top_genre_share"] = float(np.mean(hits)) if hits else 0.0
    return stats
