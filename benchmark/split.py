"""Leakage-safe global temporal split ("Time to Split", Gusak et al., RecSys 2025).

Cutoff T = the q-quantile of all timestamps (an observed timestamp: numpy's 'lower' method).
Train = every interaction at or before T, from users with >= `min_train_interactions` of them.
Test tasks come from users with >= 1 interaction at or before T and >= 1 after T; the target kind
decides which later interactions are predicted and from what input:

- `first`: the first interaction after T, from the history up to T;
- `last`: the user's last interaction, from everything before it (post-T events included);
- `successive`: every interaction after T in turn, each from everything before it;
- `all`: the set of interactions after T, from the history up to T.

Inputs always start at the user's first interaction and stop before the target, so a model fitted
on data <= T never sees a target. Validation is carved out of train the same way (`by_time`), from
held-out users (`by_user`), or from each train user's last training item (`last_train_item`).

Every task references rows of the canonical event log (`Interactions`), which keeps the invariants
checkable as set operations on row numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
import torch

from benchmark.data.dataset import Interactions
from benchmark.interfaces import PADDING
from benchmark.keys import key_fields
from benchmark.split_kinds import TARGET_KINDS, VALIDATION_KINDS

TestTarget = Literal["first", "last", "successive", "all"]
ValidationKind = Literal["by_time", "by_user", "last_train_item"]
HistoryScope = Literal["train", "fit"]


@dataclass(frozen=True)
class Tasks:
    """Prediction tasks. Task i belongs to `user[i]`; its input is the user's log rows
    [offsets[user], input_stop[i]); its targets are the log rows
    `target_rows[target_offsets[i]:target_offsets[i+1]]` (one row except for target kind `all`)."""

    user: np.ndarray
    input_stop: np.ndarray
    target_offsets: np.ndarray
    target_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @property
    def max_targets(self) -> int:
        """Largest number of targets of one task."""
        return int(np.diff(self.target_offsets).max(initial=0))

    def subset(self, index: np.ndarray) -> Tasks:
        """The tasks at positions `index`, in that order."""
        counts = np.diff(self.target_offsets)[index]
        starts = self.target_offsets[:-1][index]
        return Tasks(self.user[index], self.input_stop[index],
                     np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     self.target_rows[concat_ranges(starts, counts)])


@dataclass(frozen=True)
class Fold:
    """Rows a model may be fitted on, and the tasks it is evaluated on."""

    train_rows: np.ndarray
    tasks: Tasks
    cutoff: int | None


@dataclass(frozen=True)
class SplitConfig:
    """Settings of a global temporal split (plain data; enters cache and run keys)."""

    quantile: float = 0.9
    target: TestTarget = "first"
    validation: ValidationKind = "by_time"
    validation_quantile: float = 0.9
    validation_users: int = 1024
    min_train_interactions: int = 2
    seed: int = 0
    # by_user: hold out this fraction of the training users instead of `validation_users` of them
    # (the seed paper holds out 20%)
    validation_fraction: float | None = field(default=None, metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        for key in ("quantile", "validation_quantile"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ValueError(f"split: {key} must be in (0, 1), got {getattr(self, key)!r}")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"split: target must be one of {TARGET_KINDS}, got {self.target!r}")
        if self.validation not in VALIDATION_KINDS:
            raise ValueError(f"split: validation must be one of {VALIDATION_KINDS}, got {self.validation!r}")
        if self.validation_users < 1 or self.min_train_interactions < 1:
            raise ValueError("split: validation_users and min_train_interactions must be >= 1")
        if self.validation_fraction is not None and not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"split: validation_fraction must be in (0, 1), got {self.validation_fraction!r}")

    def as_dict(self) -> dict:
        """Plain-data form, as it enters run keys (see `key_fields`)."""
        return key_fields(self)

    def label_parts(self) -> list[str]:
        """The split's identity in short: q<quantile>, target, validation, then `name=value` for every other
        field that differs from its default (study names, MLflow tags and report headings use it, so two
        splits that differ in any field never share a study or a table)."""
        default = SplitConfig()
        others = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                  if f.name not in ("quantile", "target", "validation") and getattr(self, f.name) != getattr(default, f.name)]
        return [f"q{self.quantile}", self.target, self.validation, *others]

    def apply(self, log: Interactions) -> Split:
        """Split `log`."""
        cutoff = int(np.quantile(log.timestamp, self.quantile, method="lower"))
        offsets = log.offsets
        whole = offsets[1:]
        before_t = _count_upto(log, whole, cutoff)
        in_train = before_t >= self.min_train_interactions
        if not in_train.any():
            raise ValueError(f"split {self.as_dict()}: no user of '{log.name}' has >= {self.min_train_interactions} "
                             f"interactions at or before the cutoff {_iso(cutoff)}; raise the quantile")
        train_stop = offsets[:-1] + np.where(in_train, before_t, 0)
        test = _cutoff_tasks(log, whole, cutoff, self.target)
        return Split(self, log, cutoff, _rows(offsets[:-1], train_stop), self._validation(log, train_stop), test)

    def _held_out_count(self, n_train_users: int) -> int:
        """How many training users `by_user` validation holds out."""
        if self.validation_fraction is not None:
            return int(n_train_users * self.validation_fraction)
        return min(self.validation_users, n_train_users)

    def _validation(self, log: Interactions, train_stop: np.ndarray) -> Fold:
        offsets = log.offsets
        starts = offsets[:-1]
        train_lengths = train_stop - starts
        if self.validation == "by_time":
            train_timestamps = log.timestamp[_rows(starts, train_stop)]
            cutoff = int(np.quantile(train_timestamps, self.validation_quantile, method="lower"))
            before = _count_upto(log, train_stop, cutoff)
            fit_stop = starts + np.where(before >= self.min_train_interactions, before, 0)
            return Fold(_rows(starts, fit_stop), _cutoff_tasks(log, train_stop, cutoff, self.target), cutoff)
        # Users whose last training item can be a target with a non-empty input before it.
        train_users = np.flatnonzero(train_lengths >= 2)
        if self.validation == "by_user":
            rng = np.random.default_rng(self.seed)
            held_out = np.sort(rng.choice(train_users, size=self._held_out_count(len(train_users)), replace=False))
            fit_stop = train_stop.copy()
            fit_stop[held_out] = starts[held_out]
            return Fold(_rows(starts, fit_stop), _last_row_tasks(held_out, train_stop), None)
        shortened = np.where(train_lengths > 0, train_lengths - 1, 0)
        fit_stop = starts + np.where(shortened >= self.min_train_interactions, shortened, 0)
        return Fold(_rows(starts, fit_stop), _last_row_tasks(train_users, train_stop), None)


@dataclass(frozen=True)
class Split:
    """The result of a split: train rows, a validation fold, test tasks, and per-user histories."""

    config: SplitConfig
    log: Interactions
    cutoff: int
    train_rows: np.ndarray
    validation: Fold
    test: Tasks

    @cached_property
    def _history_lengths(self) -> np.ndarray:
        return _count_upto(self.log, self.log.offsets[1:], self.cutoff)

    def histories(self, scope: HistoryScope = "train") -> pd.DataFrame:
        """Interactions (user, item, timestamp[, rating]) a user profile may be built from, in order.

        `train`: every user's interactions at or before the cutoff (the training period). `fit`: the
        rows the evaluated model is actually fitted on (the validation fold's training rows), so that
        nothing a model is validated on reaches its distillation targets either.
        """
        if scope == "fit":
            rows = self.validation.train_rows
        else:
            starts = self.log.offsets[:-1]
            rows = _rows(starts, starts + self._history_lengths)
        return self.log.frame().iloc[rows].reset_index(drop=True)

    def training_histories(self) -> pd.DataFrame:
        """Every user's training-period interactions (same as `histories("train")`)."""
        return self.histories("train")

    def inputs(self, tasks: Tasks, max_len: int) -> torch.Tensor:
        """Each task's last `max_len` input items, left-padded with PADDING: LongTensor [tasks, max_len]."""
        return last_items(self.log.item, self.log.offsets[tasks.user], tasks.input_stop, max_len)

    def report(self) -> dict[str, object]:
        """Counts that describe the split: users/tasks/targets, cold-item and repeat targets, ties at T."""
        train_items = np.zeros(self.log.n_items + 1, dtype=bool)
        train_items[self.log.item[self.train_rows]] = True
        report: dict[str, object] = {
            "cutoff": _iso(self.cutoff),
            "interactions_at_cutoff": int((self.log.timestamp == self.cutoff).sum()),
            "train_users": int(np.unique(self.log.user[self.train_rows]).size),
            "train_interactions": int(self.train_rows.size),
            "val_cutoff": _iso(self.validation.cutoff) if self.validation.cutoff is not None else None,
            "val_fit_interactions": int(self.validation.train_rows.size),
        }
        for name, tasks in (("val", self.validation.tasks), ("test", self.test)):
            targets = self.log.item[tasks.target_rows]
            report |= {
                f"{name}_users": int(np.unique(tasks.user).size),
                f"{name}_tasks": len(tasks),
                f"{name}_targets": int(tasks.target_rows.size),
                f"{name}_cold_item_targets": int((~train_items[targets]).sum()),
                f"{name}_repeat_targets": int(self._repeat_targets(tasks).sum()),
            }
        return report

    def _repeat_targets(self, tasks: Tasks) -> np.ndarray:
        """For each target row: was its item already in the task's input?"""
        log = self.log
        first_row = (pd.DataFrame({"u": log.user, "i": log.item}).reset_index()
                     .drop_duplicates(["u", "i"]).set_index(["u", "i"])["index"])
        owners = np.repeat(np.arange(len(tasks)), np.diff(tasks.target_offsets))
        keys = pd.MultiIndex.from_arrays([log.user[tasks.target_rows], log.item[tasks.target_rows]])
        return first_row.reindex(keys).to_numpy() < tasks.input_stop[owners]


def last_items(items: np.ndarray, start: np.ndarray, stop: np.ndarray, max_len: int) -> torch.Tensor:
    """Rows `items[start:stop]` per task, keeping the last `max_len`, left-padded: LongTensor."""
    positions = stop[:, None] - max_len + np.arange(max_len)[None, :]
    valid = positions >= start[:, None]
    gathered = np.where(valid, items[np.clip(positions, 0, None)], PADDING)
    return torch.from_numpy(gathered.astype(np.int64))


def _count_upto(log: Interactions, stop: np.ndarray, cutoff: int) -> np.ndarray:
    """Per user: number of rows in [offsets[u], stop[u]) with timestamp <= cutoff (a prefix, as rows are time-ordered)."""
    upto = log.timestamp <= cutoff
    before_stop = np.arange(len(log.user)) < stop[log.user]
    return np.bincount(log.user[upto & before_stop], minlength=log.n_users).astype(np.int64)


def _cutoff_tasks(log: Interactions, universe_stop: np.ndarray, cutoff: int, kind: TestTarget) -> Tasks:
    """Tasks of users with >= 1 row <= cutoff and >= 1 row after it within rows [offsets[u], universe_stop[u])."""
    starts = log.offsets[:-1]
    first_after = starts + _count_upto(log, universe_stop, cutoff)
    users = np.flatnonzero((first_after > starts) & (universe_stop > first_after))
    first_after, end = first_after[users], universe_stop[users]
    if kind == "first":
        return _single_target(users, first_after, first_after)
    if kind == "last":
        return _single_target(users, end - 1, end - 1)
    counts = end - first_after
    later_rows = concat_ranges(first_after, counts)
    if kind == "successive":
        return _single_target(np.repeat(users, counts), later_rows, later_rows)
    return Tasks(users, first_after, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), later_rows)


def _last_row_tasks(users: np.ndarray, stop: np.ndarray) -> Tasks:
    last = stop[users] - 1
    return _single_target(users, last, last)


def _single_target(users: np.ndarray, input_stop: np.ndarray, target_rows: np.ndarray) -> Tasks:
    return Tasks(users.astype(np.int64), input_stop.astype(np.int64),
                 np.arange(len(users) + 1, dtype=np.int64), target_rows.astype(np.int64))


def concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + count) for each pair, vectorized."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    group_starts = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return group_starts + np.arange(total, dtype=np.int64)


def _rows(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    return concat_ranges(starts, np.maximum(stops - starts, 0))


def _iso(timestamp: int) -> str:
    return pd.Timestamp(timestamp, unit="s").isoformat()
