"""A registered model's spec: how its parameters are validated and resolved (the resolved params enter run
keys), how it is fitted on a split (`Fitted`: the model and what its fit wants recorded), and what it is
(backbone, method). `neural_spec` builds one for a transformer backbone and a row of
`benchmark.methods.METHODS`; `popularity_spec` for a popularity baseline. The names live in `registry.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from baselines.popularity import Popularity
from benchmark.backbone_fit import fit_backbone
from benchmark.interfaces import Recommender
from benchmark.keys import key_fields
from benchmark.methods import METHODS
from benchmark.methods.base import FitContext
from benchmark.methods.targets import METHOD_TARGET, TARGETS, TargetConfig
from benchmark.profiles.settings import ProfileSettings
from benchmark.split import Split
from benchmark.trainer import TrainConfig


@dataclass(frozen=True)
class Fitted:
    """A fitted model and what its fit wants recorded (best epoch, timings, per-epoch history)."""

    model: Recommender
    info: dict[str, Any]


FitFunction = Callable[[Split, dict[str, Any], FitContext], Fitted]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. `resolve` validates params and fills in every default: the resolved params
    enter run keys, so changing a default changes the key. `fit` trains on a split. `backbone` and
    `method` say what the model is; `accepted_params`: every parameter name `resolve` accepts."""

    fit: FitFunction
    resolve: Callable[[dict[str, Any]], dict[str, Any]]
    backbone: str
    method: str | None = None
    accepted_params: frozenset[str] = frozenset()
    model_class: type | None = None  # the neural backbone's class and its architecture config class
    config_class: type | None = None

    def build_backbone(self, n_items: int, architecture: dict[str, Any]) -> torch.nn.Module:
        """An untrained backbone of this model over `n_items` items (architecture params only)."""
        if self.model_class is None or self.config_class is None:
            raise ValueError(f"{self.backbone} is not a neural backbone")
        return self.model_class(n_items, self.config_class(**architecture))

    @property
    def has_target(self) -> bool:
        """Whether the model's method is pulled towards a per-user target (a `target` parameter)."""
        return TargetConfig in METHODS[self.method].configs

    def target(self, params: dict[str, Any]) -> str | None:
        """The distillation target these params choose (None for a model whose method has no target)."""
        return self.resolve(params).get("target", METHOD_TARGET) if self.has_target else None

    def profile_settings(self, params: dict[str, Any]) -> ProfileSettings | None:
        """The LLM profile generator/encoder settings within `params` (None unless the fit needs every
        user's LLM profile, generated through the profile cache)."""
        target = self.target(params)
        if target is None or not TARGETS[target].uses_profiles:
            return None
        resolved = self.resolve(params)
        return ProfileSettings(**{f.name: resolved[f.name] for f in fields(ProfileSettings) if f.name in resolved})


def split_params(params: dict[str, Any], *config_classes: type) -> list[dict[str, Any]]:
    """Distribute flat params over dataclasses by field name; an unknown key is an error naming it."""
    known = [{f.name for f in fields(cls)} for cls in config_classes]
    unknown = sorted(set(params) - set().union(*known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(set().union(*known))}")
    return [{k: v for k, v in params.items() if k in names} for names in known]


def popularity_spec(name: str, build: Callable[..., Popularity], defaults: dict[str, Any]) -> ModelSpec:
    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(defaults)}")
        return defaults | params

    def fit(split: Split, params: dict[str, Any], context: FitContext) -> Fitted:
        rows = split.train_rows
        return Fitted(build(split.log.item[rows], split.log.timestamp[rows], split.log.n_items, **resolve(params)), {})

    return ModelSpec(fit, resolve, backbone=name, accepted_params=frozenset(defaults))


def neural_spec(name: str, model_class: type, config_class: type, method: str | None = None) -> ModelSpec:
    """A transformer backbone trained by `method` (a row of `METHODS`; None: plain): params are its
    architecture fields plus TrainConfig fields plus the method's config fields, except the seed, which is
    a run-level setting (the suite's `seeds`)."""
    classes: list[type] = [config_class, TrainConfig, *METHODS[method].configs]

    def configs(params: dict[str, Any]) -> list[Any]:
        if "seed" in params:
            raise ValueError("'seed' is set per run by the suite's seeds, not in model params")
        return [cls(**part) for cls, part in zip(classes, split_params(params, *classes), strict=True)]

    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for config in configs(params):
            resolved |= key_fields(config, exclude=("seed",))  # the seed is a run-level setting
        return resolved

    def fit(split: Split, params: dict[str, Any], context: FitContext) -> Fitted:
        architecture, training, *extra = configs(params)
        training = replace(training, seed=context.seed)
        torch.manual_seed(context.seed)
        model = model_class(split.log.n_items, architecture)
        objective, info = METHODS[method].setup(model, split, architecture, training, extra, context)
        result = fit_backbone(model, split, training, evaluation=context.evaluation, objective=objective,
                              checkpoint=context.checkpoint, progress=context.progress, callbacks=context.callbacks,
                              device=context.device, pause_when=context.pause_when)
        betas = [epoch["train_beta"] for epoch in result.history if "train_beta" in epoch]
        if betas:  # the loss-ratio weight at the first and last distillation epoch
            info |= {"beta_first": betas[0], "beta_last": betas[-1]}
        return Fitted(model, info | {"device": context.device, "best_epoch": result.best_epoch,
                                     "epochs_run": result.epochs_run, "best_val": result.best_metric,
                                     "train_seconds": result.seconds, "resumed_from": result.resumed_from,
                                     "history": result.history})

    accepted = frozenset(f.name for cls in classes for f in fields(cls) if f.name != "seed")
    return ModelSpec(fit, resolve, backbone=name, method=method, accepted_params=accepted, model_class=model_class,
                     config_class=config_class)
