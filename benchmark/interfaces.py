"""The shared definitions every stage agrees on: the padding id, a training batch, and the protocols of
a backbone, a fitted recommender and a training callback.

Models (`baselines/`) import only this module from the harness, so a new backbone depends on nothing
but these few names; the trainer, the distillation objective and the evaluation rely on the same ones.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

PADDING = 0  # item id 0 pads left-padded sequences; real items are 1..n_items


class SequenceBatch(NamedTuple):
    """One training batch: model inputs, per-position targets (0 = no loss there), the users."""

    users: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor


class Backbone(Protocol):
    """What the trainer and the distillation objective need from a sequence model.

    `hidden_states(inputs)`: the output of every block, then the final representation (after the final
    layer norm where the architecture has one), each [B, L, dim]; `scores(inputs)`: next-item scores
    [B, n_items + 1] for left-padded histories; `training_batch` and `loss`: the model's own task;
    `causal`: whether a position sees only earlier positions; `embedding.items`: the item embedding table
    (the tests perturb what it returns at padding positions).
    """

    max_len: int
    causal: bool

    def hidden_states(self, inputs: torch.Tensor) -> list[torch.Tensor]: ...
    def scores(self, inputs: torch.Tensor) -> torch.Tensor: ...
    def training_batch(self, users: torch.Tensor, sequences: torch.Tensor, generator: torch.Generator) -> SequenceBatch: ...
    def loss(self, final_hidden: torch.Tensor, batch: SequenceBatch, generator: torch.Generator) -> torch.Tensor: ...


class Recommender(Protocol):
    """What evaluation needs from any fitted model: left-padded inputs [B, max_len] -> scores over the
    whole catalog [B, n_items + 1] (column 0 = padding)."""

    max_len: int

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...


class Callback(Protocol):
    """Observes training; MLflow logging and Optuna pruning attach here."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...
