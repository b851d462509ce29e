"""Full-ranking metrics against a brute-force reference, including ties, filtering and large K."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.metrics import EvaluationConfig, evaluate, metrics_from_ranks, target_ranks
from benchmark.split import SplitConfig
from tests.conftest import make_log


def brute_force(scores: np.ndarray, targets: list[int], excluded: set[int], ks) -> dict[str, float]:
    """Rank by (score desc, non-targets before targets, target order) among allowed items 1..n."""
    candidates = [i for i in range(1, len(scores)) if i not in excluded]
    order = sorted(candidates, key=lambda i: (-scores[i], i in targets, targets.index(i) if i in targets else 0))
    ranks = [order.index(t) + 1 if t in order else math.inf for t in targets]
    out = {}
    for k in ks:
        hits = [r for r in ranks if r <= k]
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(targets), k) + 1))
        out[f"hr@{k}"] = float(bool(hits))
        out[f"recall@{k}"] = len(hits) / len(targets)
        out[f"ndcg@{k}"] = sum(1 / math.log2(r + 1) for r in hits) / ideal
        out[f"mrr@{k}"] = 1 / min(ranks) if min(ranks) <= k else 0.0
    return out


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_with_ties_filtering_and_large_k(seed):
    rng = np.random.default_rng(seed)
    n_items, batch = int(rng.integers(3, 30)), 16
    ks = (1, 3, 5, n_items + 10)
    # Few distinct values -> many ties; some NaN and -inf as a model might emit.
    scores = rng.integers(0, 4, size=(batch, n_items + 1)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    width = int(rng.integers(1, 5))
    targets = np.zeros((batch, width), dtype=np.int64)
    excluded = rng.random((batch, n_items + 1)) < 0.2
    for row in range(batch):
        count = int(rng.integers(1, min(width, n_items) + 1))
        targets[row, :count] = rng.choice(np.arange(1, n_items + 1), size=count, replace=False)
    ranks = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(excluded))
    got = metrics_from_ranks(ranks, torch.from_numpy((targets > 0).sum(1)), ks)
    for row in range(batch):
        row_targets = [int(t) for t in targets[row] if t > 0]
        clean = np.where(np.isnan(scores[row]), -np.inf, scores[row])
        expected = brute_force(clean, row_targets, set(np.flatnonzero(excluded[row])) | {0}, ks)
        for name, value in expected.items():
            assert got[name][row].item() == pytest.approx(value), (seed, row, name)


def test_constant_scores_rank_target_last():
    scores = torch.zeros(1, 11)
    ranks = target_ranks(scores, torch.tensor([[3]]), torch.zeros(1, 11, dtype=torch.bool))
    assert ranks.item() == 10
    assert metrics_from_ranks(ranks, torch.tensor([1]), (5,))["ndcg@5"].item() == 0.0


def test_padding_is_never_ranked():
    scores = torch.tensor([[100.0, 1.0, 2.0, 3.0]])
    ranks = target_ranks(scores, torch.tensor([[3]]), torch.zeros(1, 4, dtype=torch.bool))
    assert ranks.item() == 1


def test_evaluate_filters_whole_history_and_averages_per_user():
    # user 0: a b c | d ; user 1: a | b c (successive targets b, c)
    frame = pd.DataFrame({"user": [0, 0, 0, 0, 1, 1, 1], "item": ["a", "b", "c", "d", "a", "b", "c"],
                          "timestamp": [1, 2, 3, 10, 1, 11, 12]})
    log = make_log(frame)
    split = SplitConfig(quantile=0.5, target="successive").apply(log)
    # Scores prefer a > b > d > c; with max_len=1 the scorer sees only the last item, but filtering
    # must remove the whole history (user 1's task for c must not rank a above anything).
    def scorer(inputs):
        return torch.tensor([[-1.0, 4.0, 3.0, 1.0, 2.0]]).expand(inputs.shape[0], -1)

    result = evaluate(scorer, log, split.test, max_len=1, config=EvaluationConfig(ks=(1,)))
    per_user = result.per_user.set_index("user_id")
    assert per_user.loc[0, "hr@1"] == 1.0  # d is the only unseen item
    assert per_user.loc[1, "hr@1"] == 0.5  # b: rank 1 (a filtered); c: rank 2 behind unseen d
    assert result.means["hr@1"] == pytest.approx(0.75)  # users weigh equally (task mean: 2/3)
    unfiltered = evaluate(scorer, log, split.test, max_len=1, config=EvaluationConfig(ks=(1,), filter_seen=False))
    assert unfiltered.means["hr@1"] == 0.0
