"""The distillation objective (Severin et al., ECIR 2026), wrapped around any backbone.

For a training sequence of user u, the hidden states of one block are aggregated into H(u). `layer`:
k = the output of block k (counted from 1) before the final layer norm, as the official code hooks it
(its `reconstruction_layer: k` is `layer: k + 1` here); `last` (default) = the last block's output;
`final` (or -1) = the final layer-normalised representation, the very one that is scored. Pooling:

- `mean`: plain average;
- `exp`: softmax(gamma * t) weights over positions t, so recent items weigh more;
- `attention`: softmax(w^T h_t + b) weights (w, b trained alongside, discarded afterwards).

By default only real (non-padding) positions count. `pool_padding: true` pools as the official code
does, over the whole `max_len` window with padding positions holding zero states: `mean` divides the
sum of real states by `max_len`, `exp` normalises its weights over all `max_len` positions.

L_distil = D(H(u), P(e_u)) with e_u the user's profile embedding, P a training-only linear projection
from the profile dimension to the model dimension (`projection: profile`, as in the reference code),
or L_distil = D(P(H(u)), e_u) with P from the model dimension to the profile dimension (`projection:
hidden`), or the profile-side P kept at its random initialisation (`projection: frozen`); D in {mse,
rmse, cosine (1 - cos)}. With `profile` both sides of D are trained, so D has a minimum that ignores
the profiles: P maps every profile to one vector and every H(u) equals it. With `hidden` or `frozen`
the target side is fixed, and H(u) alike for all users leaves D at the (projected) profiles' spread.
The loss is L = alpha * beta * L_distil + (1 - alpha) * L_rec with beta = stopgrad(L_rec / L_distil)
(or 1), while epoch < distil_epochs (epochs counted from 0: the official `fine_tune_epoch: F`, with
epochs counted from 1 and distillation while epoch < F, is `distil_epochs: F - 1`); afterwards L = L_rec
(fine-tuning). The mean beta of every distillation epoch is logged (`train_beta`). Users without a profile
contribute no distillation loss. The backbone class is untouched: P and the attention pooling live in
this objective, so the trained model has exactly a plain backbone's parameters and the same inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.interfaces import PADDING, SequenceBatch
from benchmark.trainer import Objective


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings (defaults: the seed paper's SASRec/Beauty configuration)."""

    layer: int | Literal["last", "final"] = field(default="last", metadata={"omit_if_default": True})
    aggregation: Literal["mean", "exp", "attention"] = "mean"
    pool_padding: bool = field(default=False, metadata={"omit_if_default": True})
    gamma: float = 0.1
    distance: Literal["mse", "rmse", "cosine"] = "mse"
    projection: Literal["profile", "hidden", "frozen"] = "profile"
    alpha: float = 0.4
    use_beta: bool = True
    distil_epochs: int = 12

    def __post_init__(self) -> None:
        if self.aggregation not in ("mean", "exp", "attention"):
            raise ValueError(f"distill: aggregation must be mean, exp or attention, got {self.aggregation!r}")
        if self.distance not in ("mse", "rmse", "cosine"):
            raise ValueError(f"distill: distance must be mse, rmse or cosine, got {self.distance!r}")
        if self.projection not in ("profile", "hidden", "frozen"):
            raise ValueError(f"distill: projection must be profile, hidden or frozen, got {self.projection!r}")
        if self.layer not in ("last", "final") and (not isinstance(self.layer, int) or isinstance(self.layer, bool)
                                                     or self.layer == 0 or self.layer < -1):
            raise ValueError(f"distill: layer must be a block number (1, 2, ...), 'last' or 'final' (-1), "
                             f"got {self.layer!r}")
        if self.pool_padding and self.aggregation == "attention":
            raise ValueError("distill: pool_padding applies to mean and exp pooling, not attention")
        if not 0.0 <= self.alpha <= 1.0 or self.distil_epochs < 0:
            raise ValueError(f"distill: invalid settings {asdict(self)}")


def aggregate(states: torch.Tensor, real: torch.Tensor, how: str, gamma: float = 0.1,
              scorer: nn.Module | None = None, window: int | None = None) -> torch.Tensor:
    """Pool [B, L, d] states over real positions ([B, L] bool) into [B, d].

    With `window` (>= L), pool as if every sequence were left-padded to `window` positions whose states
    are zero (the official code's pooling, padding included)."""
    if window is not None:
        states = states * real.unsqueeze(-1)
        if how == "mean":
            return states.sum(1) / window
        positions = torch.arange(window - states.shape[1], window, dtype=states.dtype, device=states.device)
        full = torch.arange(window, dtype=states.dtype, device=states.device)
        weights = torch.exp(gamma * positions) / torch.exp(gamma * full).sum()
        return (states * weights[None, :, None]).sum(1)
    if how == "mean":
        weights = real.float()
        return (states * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
    if how == "exp":
        logits = gamma * torch.arange(states.shape[1], dtype=states.dtype, device=states.device).expand(real.shape)
    else:
        assert scorer is not None
        logits = scorer(states).squeeze(-1)
    weights = logits.masked_fill(~real, -torch.inf).softmax(dim=1)
    return (states * weights.unsqueeze(-1)).sum(1)


def distance(predicted: torch.Tensor, target: torch.Tensor, how: str) -> torch.Tensor:
    """Mean distance between rows."""
    if how == "cosine":
        return (1 - F.cosine_similarity(predicted, target, dim=-1)).mean()
    mse = F.mse_loss(predicted, target)
    return mse.sqrt() if how == "rmse" else mse


def hooked_index(layer: int | str, blocks: int) -> int:
    """Index into `hidden_states(...)` (each block's output, then the final representation) of `layer`."""
    if layer in ("final", -1):
        return blocks
    if layer == "last":
        return blocks - 1
    assert isinstance(layer, int)
    if layer > blocks:
        raise ValueError(f"distill: layer {layer} but the model has {blocks} blocks")
    return layer - 1


class DistillationObjective(Objective):
    """L_rec of the backbone plus the profile-alignment term during the first `distil_epochs` epochs."""

    def __init__(self, model_dim: int, targets: np.ndarray, has_target: np.ndarray, config: DistillConfig):
        super().__init__()
        self.config = config
        self.final_phase_start = config.distil_epochs
        profile_dim = targets.shape[1]
        self.projection = (nn.Linear(model_dim, profile_dim) if config.projection == "hidden"
                           else nn.Linear(profile_dim, model_dim))
        self.projection.requires_grad_(config.projection != "frozen")
        self.scorer = nn.Linear(model_dim, 1) if config.aggregation == "attention" else None
        self.register_buffer("targets", torch.as_tensor(targets, dtype=torch.float32), persistent=False)
        self.register_buffer("has_target", torch.as_tensor(has_target, dtype=torch.bool), persistent=False)

    def forward(self, model: Any, batch: SequenceBatch, epoch: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """The combined loss and its parts (for per-epoch logging)."""
        if epoch >= self.config.distil_epochs:
            return super().forward(model, batch, epoch, generator)
        states = model.hidden_states(batch.inputs)
        rec = model.loss(states[-1], batch, generator)
        with_target = self.has_target[batch.users]
        if not with_target.any():
            return rec, {"loss": float(rec.detach()), "rec_loss": float(rec.detach())}
        real = (batch.inputs != PADDING)[with_target]
        chosen = states[hooked_index(self.config.layer, len(states) - 1)]
        window = max(model.max_len, real.shape[1]) if self.config.pool_padding else None
        pooled = aggregate(chosen[with_target].float(), real, self.config.aggregation,
                           self.config.gamma, self.scorer, window)
        distil = self.distil_loss(pooled, self.targets[batch.users[with_target]])
        beta = (rec / distil).detach() if self.config.use_beta else torch.ones(())
        loss = self.config.alpha * beta * distil + (1 - self.config.alpha) * rec
        return loss, {"loss": float(loss.detach()), "rec_loss": float(rec.detach()),
                      "distil_loss": float(distil.detach()), "beta": float(beta)}

    def distil_loss(self, pooled: torch.Tensor, profiles: torch.Tensor) -> torch.Tensor:
        """D between pooled states [B, d] and profile embeddings [B, p], through P on the configured side."""
        if self.config.projection == "hidden":
            return distance(self.projection(pooled), profiles, self.config.distance)
        return distance(pooled, self.projection(profiles), self.config.distance)
