"""Full-ranking evaluation: every task is ranked against the whole catalog, never sampled negatives.

Ties are pessimistic: any candidate with the same score as a target ranks above it, so a model with
constant scores cannot look good. With several targets (target kind `all`), the ranked list puts
non-targets before targets on ties and orders tied targets by position, which gives each target a
distinct rank. Padding (item 0) is never a candidate; with `filter_seen`, items of the task's input
history are removed from the candidates too, and a target that was already seen then counts as a miss.

Metrics per task at each K: HR@K (any target in the top K), Recall@K (share of targets in the top K;
equals HR with one target), NDCG@K (binary relevance, ideal DCG over min(#targets, K) positions) and
MRR@K (reciprocal rank of the best target if within K). Per-user values are the mean over the user's
tasks (several tasks per user with target kind `successive`); reported means weight users equally.
Catalog coverage@K is the share of items that appear in at least one top-K list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from benchmark.data.dataset import Interactions
from benchmark.interfaces import PADDING
from benchmark.split import Tasks, concat_ranges, last_items

Scorer = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_KS: tuple[int, ...] = (5, 10, 20)
_DIRECT_COMPARISON_MAX_QUERIES = 8


@dataclass(frozen=True)
class EvaluationConfig:
    """Cutoffs and seen-item filtering (default on: a recommender should not re-suggest watched movies)."""

    ks: tuple[int, ...] = DEFAULT_KS
    filter_seen: bool = True

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"evaluation: ks must be positive integers, got {self.ks!r}")


@dataclass(frozen=True)
class EvaluationResult:
    """Per-user metric values (for paired tests) and their means, plus catalog coverage."""

    per_user: pd.DataFrame
    means: dict[str, float]


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """1-based pessimistic rank of every target; +inf for empty target slots (0) and excluded targets.

    scores: [B, n_items + 1]; targets: [B, T] item ids, 0 = no target, ids unique within a row;
    excluded: [B, n_items + 1] bool, candidates removed from the ranking (column 0 is always removed).
    """
    excluded = excluded.clone()
    excluded[:, PADDING] = True
    minus_inf = torch.tensor(-torch.inf, dtype=torch.float32)
    values = torch.where(excluded | scores.isnan(), minus_inf, scores.float())
    valid_count = (~excluded).sum(1, keepdim=True)

    target_scores = values.gather(1, targets)
    target_valid = (targets != PADDING) & ~excluded.gather(1, targets)
    target_scores = torch.where(target_valid, target_scores, minus_inf)
    valid_target_count = target_valid.sum(1, keepdim=True)

    # Candidates (targets included) scoring >= each target. Excluded entries hold -inf, so they are
    # counted only for a target whose own score is -inf, and the clamp removes them again.
    at_least = _count_at_least(values, target_scores).clamp(max=valid_count)
    targets_at_least = _count_at_least(target_scores, target_scores).clamp(max=valid_target_count)
    non_targets_above = at_least - targets_at_least

    # Position among the valid targets by (score desc, slot asc), skipping invalid slots.
    order = torch.sort(target_scores, dim=1, descending=True, stable=True).indices
    invalid_sorted = (~target_valid).gather(1, order).long()
    position_sorted = torch.arange(1, targets.shape[1] + 1) - (invalid_sorted.cumsum(1) - invalid_sorted)
    position = torch.empty_like(position_sorted).scatter_(1, order, position_sorted)

    ranks = (non_targets_above + position).float()
    return torch.where(target_valid, ranks, torch.tensor(torch.inf))


def _count_at_least(pool: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Per row: number of entries of `pool` >= each query value.

    A direct comparison costs B*Q*N and wins for few queries; sorting (B*N*log N) wins for many.
    """
    if queries.shape[1] <= _DIRECT_COMPARISON_MAX_QUERIES:
        return torch.stack([(pool >= queries[:, [j]]).sum(1) for j in range(queries.shape[1])], dim=1)
    ascending = torch.sort(pool, dim=1).values
    return pool.shape[1] - torch.searchsorted(ascending, queries.contiguous(), side="left")


def metrics_from_ranks(ranks: torch.Tensor, n_targets: torch.Tensor, ks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Per-task HR/Recall/NDCG/MRR at each K from target ranks [B, T] (+inf = miss) and target counts [B]."""
    out: dict[str, torch.Tensor] = {}
    gains = 1.0 / torch.log2(ranks + 1.0)
    best = ranks.min(1).values
    denominator = n_targets.clamp(min=1).double()
    for k in ks:
        hit = ranks <= k
        ideal = (1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64)))
        ideal_dcg = torch.cumsum(ideal, 0)[(n_targets.clamp(min=1, max=k) - 1)]
        out[f"hr@{k}"] = hit.any(1).double()
        out[f"recall@{k}"] = hit.sum(1).double() / denominator
        out[f"ndcg@{k}"] = torch.where(hit, gains, 0.0).sum(1).double() / ideal_dcg
        out[f"mrr@{k}"] = torch.where(best <= k, 1.0 / best, 0.0).double()
    return out


def evaluate(
    scorer: Scorer,
    log: Interactions,
    tasks: Tasks,
    *,
    max_len: int,
    config: EvaluationConfig = EvaluationConfig(),
    batch_size: int = 1024,
) -> EvaluationResult:
    """Rank the whole catalog for every task with `scorer` and aggregate metrics per user.

    `scorer` maps input sequences [B, max_len] (left-padded item ids) to scores [B, n_items + 1]; a
    scorer with parameters is fed on their device. Seen-item filtering uses the task's whole input
    history, not only the last `max_len` items.
    """
    if len(tasks) == 0:
        raise ValueError("evaluate: no tasks to evaluate (empty validation/test fold)")
    ks = config.ks
    columns: dict[str, list[np.ndarray]] = {}
    covered = {k: torch.zeros(log.n_items + 1, dtype=torch.bool) for k in ks}
    max_k = min(max(ks), log.n_items)
    starts = log.offsets[tasks.user]
    device = next((p.device for p in scorer.parameters()), torch.device("cpu")) \
        if isinstance(scorer, torch.nn.Module) else torch.device("cpu")
    with torch.inference_mode():
        for begin in range(0, len(tasks), batch_size):
            index = np.arange(begin, min(begin + batch_size, len(tasks)))
            batch = tasks.subset(index)
            scores = scorer(last_items(log.item, starts[index], batch.input_stop, max_len).to(device)).cpu()
            excluded = torch.zeros(scores.shape, dtype=torch.bool)
            if config.filter_seen:
                excluded[_seen_pairs(log.item, starts[index], batch.input_stop)] = True
            targets, n_targets = _target_matrix(log.item, batch)
            ranks = target_ranks(scores, targets, excluded)
            for name, values in metrics_from_ranks(ranks, n_targets, ks).items():
                columns.setdefault(name, []).append(values.numpy())
            masked = scores.float().masked_fill(excluded, -torch.inf)
            masked[:, PADDING] = -torch.inf
            top = masked.topk(max_k, dim=1)
            for k in ks:
                shown = top.indices[:, :k][top.values[:, :k] > -torch.inf]
                covered[k][shown] = True
    per_task = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    per_user = per_task.groupby(tasks.user).mean()
    per_user.index.name = "user"
    per_user.insert(0, "user_id", log.user_ids[per_user.index.to_numpy()])
    means = {name: float(per_user[name].mean()) for name in per_task.columns}
    means |= {f"coverage@{k}": float(covered[k].sum()) / log.n_items for k in ks}
    return EvaluationResult(per_user, means)


def _seen_pairs(items: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(task index, item) for every item in each task's whole input history."""
    lengths = stop - start
    owners = np.repeat(np.arange(len(start)), lengths)
    rows = concat_ranges(start, lengths)
    return torch.from_numpy(owners), torch.from_numpy(items[rows])


def _target_matrix(items: np.ndarray, tasks: Tasks) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets as a [B, T] item matrix (0 = empty slot, duplicates removed) and the count per row."""
    counts = np.diff(tasks.target_offsets)
    width = max(int(counts.max(initial=1)), 1)
    matrix = np.zeros((len(tasks), width), dtype=np.int64)
    owners = np.repeat(np.arange(len(tasks)), counts)
    slots = np.arange(tasks.target_rows.size) - np.repeat(tasks.target_offsets[:-1], counts)
    matrix[owners, slots] = items[tasks.target_rows]
    matrix = np.sort(matrix, axis=1)
    matrix[:, 1:][matrix[:, 1:] == matrix[:, :-1]] = PADDING
    return torch.from_numpy(matrix), torch.from_numpy((matrix != PADDING).sum(1))
