"""User-profile distillation (Severin et al., ECIR 2026): the backbone trained with the distillation
objective (`distill.py`) towards one vector per user, the target of the run's `target` parameter
(`targets.py`: the LLM profile embeddings, or a control)."""

from __future__ import annotations

from typing import Any

from torch import nn

from benchmark.methods.base import FitContext, Method, Setup
from benchmark.methods.distill import DistillationObjective, DistillConfig
from benchmark.methods.targets import TargetConfig, build_targets
from benchmark.profiles.settings import ProfileResources, ProfileSettings
from benchmark.split import Split
from benchmark.trainer import TrainConfig


def distillation_setup(model: nn.Module, split: Split, architecture: Any, training: TrainConfig, configs: list[Any],
                       context: FitContext) -> Setup:
    """The distillation objective towards the chosen targets."""
    choice, distillation, settings = configs
    with ProfileResources(settings, context.cache_dir) as resources:
        targets = build_targets(split, choice.target, resources, context.seed, progress=context.progress)
    objective = DistillationObjective(architecture.dim, targets.matrix, targets.has_target, distillation)
    return objective, {"targets": targets.encoder, "users_with_target": int(targets.has_target.sum())}


KD = Method((TargetConfig, DistillConfig, ProfileSettings), distillation_setup)
