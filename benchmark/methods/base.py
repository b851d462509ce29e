"""What every method shares: the run-level settings a fit may need (`FitContext`) and what a method is
(`Method`: the config classes its parameters fill and the setup that prepares a backbone's training)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from benchmark.interfaces import Callback
from benchmark.metrics import EvaluationConfig
from benchmark.split import Split
from benchmark.trainer import Objective, TrainConfig


@dataclass(frozen=True)
class FitContext:
    """Run-level settings a fit may need besides the model's own parameters."""

    seed: int = 0
    evaluation: EvaluationConfig = EvaluationConfig()
    checkpoint: Path | None = None
    progress: bool = True
    cache_dir: Path | None = None
    callbacks: tuple[Callback, ...] = ()
    device: str = "cpu"  # where neural models train and score (a run-level setting, recorded, not in the key)
    pause_when: Callable[[], bool] | None = None  # pauses a checkpointed fit between epochs (a spent time budget)


Setup = tuple[Objective | None, dict[str, Any]]  # the training objective (None: the backbone's own loss), info
SetupFunction = Callable[[nn.Module, Split, Any, TrainConfig, list[Any], FitContext], Setup]


@dataclass(frozen=True)
class Method:
    """A way of training a backbone: the config classes whose fields its parameters add to the backbone's
    and the training settings', and `setup(model, split, architecture, training, configs, context)`, which
    prepares the untrained model and returns the objective to train it with and what to record."""

    configs: tuple[type, ...]
    setup: SetupFunction


def plain_setup(model: nn.Module, split: Split, architecture: Any, training: TrainConfig, configs: list[Any],
                context: FitContext) -> Setup:
    """A plain backbone: its own loss, nothing to prepare."""
    return None, {}


PLAIN = Method((), plain_setup)
