"""Fitting a sequential backbone on a split: training sequences from the fold's rows, early stopping on
the fold's validation tasks with the same full-ranking evaluation as the test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.metrics import EvaluationConfig, evaluate
from benchmark.split import Split, last_items
from benchmark.trainer import Callback, Objective, TrainConfig, TrainingData, TrainResult, train


def training_data(split: Split, rows: np.ndarray, window: int) -> TrainingData:
    """One sequence per user with >= 2 of `rows`: their last `window` items, left-padded."""
    log = split.log
    counts = np.bincount(log.user[rows], minlength=log.n_users)
    users = np.flatnonzero(counts >= 2)
    # `rows` holds a prefix of each user's log rows, so a user's rows end at start + count.
    starts = log.offsets[users]
    return TrainingData(torch.from_numpy(users), last_items(log.item, starts, starts + counts[users], window))


def fit_backbone(
    model: nn.Module,
    split: Split,
    config: TrainConfig,
    *,
    evaluation: EvaluationConfig = EvaluationConfig(),
    objective: Objective | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint: Path | None = None,
    progress: bool = True,
    device: str = "cpu",
    pause_when: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train on the validation fold's rows, early-stopping on its tasks; `model` ends at its best epoch."""
    fold = split.validation
    data = training_data(split, fold.train_rows, model.max_len + 1)

    def validate(candidate: nn.Module) -> dict[str, float]:
        return evaluate(candidate, split.log, fold.tasks, max_len=candidate.max_len, config=evaluation).means

    return train(model, data, validate, config, objective=objective, callbacks=callbacks,
                 checkpoint=checkpoint, progress=progress, device=device, pause_when=pause_when)
