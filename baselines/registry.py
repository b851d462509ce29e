"""Model registry: name -> how to validate its parameters and fit it on a split.

Adding a model = one module + one entry in MODELS. A fitted model is a callable mapping left-padded
input sequences [B, max_len] to scores over the whole catalog [B, n_items + 1] (column 0 = padding),
with a `max_len` attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.llmemb import LLMEmbConfig, apply_llmemb
from baselines.popularity import most_pop, recent_pop
from baselines.sasrec import SASRec, SASRecConfig
from benchmark.distill import DistillationObjective, DistillConfig
from benchmark.fit import fit_backbone
from benchmark.metrics import EvaluationConfig
from benchmark.profile_settings import ProfileResources, ProfileSettings
from benchmark.profiles.encode import encode_cached
from benchmark.profiles.prompts import catalog_texts
from benchmark.runs import key_fields
from benchmark.split import Split
from benchmark.targets import TargetKind, build_targets
from benchmark.train import Callback, TrainConfig


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
    cache_dir: Path | None = None
    callbacks: tuple[Callback, ...] = ()


@dataclass(frozen=True)
class Fitted:
    """A fitted model and what its fit wants recorded (best epoch, timings, per-epoch history)."""

    model: Recommender
    info: dict[str, Any]


FitFunction = Callable[[Split, dict[str, Any], FitContext], Fitted]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model. `resolve` validates params and fills in every default: the resolved params
    enter run keys, so changing a default changes the key. `fit` trains on a split. `uses_llm_profiles`:
    the fit needs every user's LLM profile (generated through the profile cache). `accepted_params`:
    every parameter name `resolve` accepts."""

    fit: FitFunction
    resolve: Callable[[dict[str, Any]], dict[str, Any]]
    uses_llm_profiles: bool = False
    accepted_params: frozenset[str] = frozenset()

    def profile_settings(self, params: dict[str, Any]) -> ProfileSettings | None:
        """The profile generator/encoder settings within `params` (None for models without profiles)."""
        if not self.uses_llm_profiles:
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


def _popularity(build: Callable[..., Recommender], defaults: dict[str, Any]) -> ModelSpec:
    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(defaults)}")
        return defaults | params

    def fit(split: Split, params: dict[str, Any], context: FitContext) -> Fitted:
        return Fitted(build(split.log, split.train_rows, **resolve(params)), {})

    return ModelSpec(fit, resolve, accepted_params=frozenset(defaults))


def _neural(model_class: type, config_class: type, *, target: TargetKind | None = None,
            llmemb: bool = False) -> ModelSpec:
    """A transformer backbone: params are its architecture fields plus TrainConfig fields (plus, for
    distilled variants, DistillConfig and ProfileSettings fields; for LLMEmb, LLMEmbConfig and
    ProfileSettings), except
    the seed, which is a run-level setting (the suite's `seeds`)."""
    classes: list[type] = [config_class, TrainConfig]
    if target is not None:
        classes += [DistillConfig, ProfileSettings]
    elif llmemb:
        classes += [LLMEmbConfig, ProfileSettings]

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
        torch.manual_seed(context.seed)
        model = model_class(split.log.n_items, architecture)
        objective, info = None, {}
        if extra:
            resources = ProfileResources(extra[-1], context.cache_dir)
            if target is not None:
                targets = build_targets(split, target, resources, context.seed, progress=context.progress)
                objective = DistillationObjective(architecture.dim, targets.matrix, targets.has_target, extra[0])
                info = {"targets": targets.encoder, "users_with_target": int(targets.has_target.sum())}
            else:
                texts = catalog_texts(split.log, resources.settings.prompts.templates)
                vectors = encode_cached(resources.encoder, texts, resources.store, progress=context.progress)
                apply_llmemb(model, vectors, extra[0], context.seed)
                info = {"item_text_encoder": resources.encoder.id}
        result = fit_backbone(model, split, replace(training, seed=context.seed), evaluation=context.evaluation,
                              objective=objective, checkpoint=context.checkpoint, progress=context.progress,
                              callbacks=context.callbacks)
        betas = [epoch["train_beta"] for epoch in result.history if "train_beta" in epoch]
        if betas:  # the loss-ratio weight at the first and last distillation epoch
            info |= {"beta_first": betas[0], "beta_last": betas[-1]}
        return Fitted(model, info | {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                                     "best_val": result.best_metric, "train_seconds": result.seconds,
                                     "resumed_from": result.resumed_from, "history": result.history})

    accepted = frozenset(f.name for cls in classes for f in fields(cls) if f.name != "seed")
    return ModelSpec(fit, resolve, uses_llm_profiles=target in ("llm", "shuffled"), accepted_params=accepted)


def _variants(name: str, model_class: type, config_class: type) -> dict[str, ModelSpec]:
    """The plain backbone, its distilled variant, the controls, and LLMEmb initialisation."""
    return {
        name: _neural(model_class, config_class),
        f"{name}-kd": _neural(model_class, config_class, target="llm"),
        f"{name}-kd-shuffled": _neural(model_class, config_class, target="shuffled"),
        f"{name}-kd-random": _neural(model_class, config_class, target="random"),
        f"{name}-kd-side_info": _neural(model_class, config_class, target="side_info_text"),
        f"{name}-kd-side_info_mean": _neural(model_class, config_class, target="side_info_mean"),
        f"{name}-kd-oracle": _neural(model_class, config_class, target="oracle"),
        f"{name}-llmemb": _neural(model_class, config_class, llmemb=True),
    }


MODELS: dict[str, ModelSpec] = {
    "mostpop": _popularity(most_pop, {}),
    "recentpop": _popularity(recent_pop, {"window": 0.05}),
    **_variants("sasrec", SASRec, SASRecConfig),
    **_variants("bert4rec", BERT4Rec, BERT4RecConfig),
}


def get_model(name: str) -> ModelSpec:
    """A registered model; the error lists the registered names."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; registered: {sorted(MODELS)}") from None
