"""Model registry: name -> how to validate its parameters and fit it on a split.

Adding a model = one module + one entry in MODELS. A fitted model is a callable mapping left-padded
input sequences [B, max_len] to scores over the whole catalog [B, n_items + 1] (column 0 = padding),
with a `max_len` attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.popularity import most_pop, recent_pop
from baselines.sasrec import SASRec, SASRecConfig
from benchmark.fit import fit_backbone
from benchmark.metrics import EvaluationConfig
from benchmark.split import Split
from benchmark.train import TrainConfig


class Recommender(Protocol):
    """What evaluation needs from any fitted model."""

    max_len: int

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class FitContext:
    """Run-level settings a fit may need besides the model's own parameters."""

    seed: int = 0
    evaluation: EvaluationConfig = EvaluationConfig()
    checkpoint: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class Fitted:
    """A fitted model and what its fit wants recorded (best epoch, timings, per-epoch history)."""

    model: Recommender
    info: dict[str, Any]


FitFunction = Callable[[Split, dict[str, Any], FitContext], Fitted]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. `resolve` validates params and fills in every default: the resolved params
    enter run keys, so changing a default changes the key. `fit` trains on a split."""

    fit: FitFunction
    resolve: Callable[[dict[str, Any]], dict[str, Any]]


def split_params(params: dict[str, Any], *config_classes: type) -> list[dict[str, Any]]:
    """Distribute flat params over dataclasses by field name; an unknown key is an error naming it."""
    known = [{f.name for f in fields(cls)} for cls in config_classes]
    unknown = sorted(set(params) - set().union(*known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(set().union(*known))}")
    return [{k: v for k, v in params.items() if k in names} for names in known]


def _popularity(build: Callable[..., Recommender], defaults: dict[str, Any]) -> ModelSpec:
    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(defaults)}")
        return defaults | params

    def fit(split: Split, params: dict[str, Any], context: FitContext) -> Fitted:
        return Fitted(build(split.log, split.train_rows, **resolve(params)), {})

    return ModelSpec(fit, resolve)


def _neural(model_class: type, config_class: type) -> ModelSpec:
    """A transformer backbone: params are its architecture fields plus TrainConfig fields, except the
    seed, which is a run-level setting (the suite's `seeds`)."""

    def configs(params: dict[str, Any]) -> tuple[Any, TrainConfig]:
        if "seed" in params:
            raise ValueError("'seed' is set per run by the suite's seeds, not in model params")
        architecture, training = split_params(params, config_class, TrainConfig)
        return config_class(**architecture), TrainConfig(**training)

    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        architecture, training = configs(params)
        return asdict(architecture) | {k: v for k, v in asdict(training).items() if k != "seed"}

    def fit(split: Split, params: dict[str, Any], context: FitContext) -> Fitted:
        architecture, training = configs(params)
        torch.manual_seed(context.seed)
        model = model_class(split.log.n_items, architecture)
        result = fit_backbone(model, split, replace(training, seed=context.seed), evaluation=context.evaluation,
                              checkpoint=context.checkpoint, progress=context.progress)
        return Fitted(model, {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                              "best_val": result.best_metric, "train_seconds": result.seconds,
                              "resumed_from": result.resumed_from, "history": result.history})

    return ModelSpec(fit, resolve)


MODELS: dict[str, ModelSpec] = {
    "mostpop": _popularity(most_pop, {}),
    "recentpop": _popularity(recent_pop, {"window": 0.05}),
    "sasrec": _neural(SASRec, SASRecConfig),
    "bert4rec": _neural(BERT4Rec, BERT4RecConfig),
}


def get_model(name: str) -> ModelSpec:
    """A registered model; the error lists the registered names."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; registered: {sorted(MODELS)}") from None
