"""Model registry: name -> how to validate its parameters and fit it on a split, and what it is.

Every entry says what it is (`backbone`, and `method`: None for a plain model, `kd` for user-profile
distillation, `textinit` for item embeddings initialised from item text, `llmemb` for LLMEmb), so
reports, ablations and figures compare a variant with its backbone and a control with its method
without parsing names.
A distilled model's target is a parameter (`target: llm | shuffled | random | side_info |
side_info_mean | oracle`, see `benchmark/targets.py`), not a name of its own.

Adding a backbone = its model file in `baselines/` + one `**_variants(...)` line in MODELS; a fitted model
is a `benchmark.interfaces.Recommender`.

Run keys keep the spelling under which runs were first published (`sasrec-kd-shuffled`; text-init as
`sasrec-llmemb` with its `llmemb_mode`: `key_identity`), so committed records stay valid; suites may
still use the control names (`canonical_name` maps them to the entry and parameter they stand for),
while `sasrec-llmemb` in a suite now means LLMEmb itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.llmemb import LLMEmbConfig, TextInitConfig, apply_llmemb, apply_text_init
from baselines.popularity import Popularity, most_pop, recent_pop
from baselines.sasrec import SASRec, SASRecConfig
from baselines.transformer import TransformerConfig
from benchmark.alignment import AlignmentObjective
from benchmark.backbone_fit import fit_backbone
from benchmark.distill import DistillationObjective, DistillConfig
from benchmark.interfaces import Callback, Recommender
from benchmark.keys import key_fields
from benchmark.metrics import EvaluationConfig
from benchmark.profile_settings import ProfileResources, ProfileSettings
from benchmark.profiles.encode import encode_cached
from benchmark.profiles.prompts import catalog_texts
from benchmark.split import Split
from benchmark.targets import DISTILL_TARGETS, LLM_TARGETS, TargetConfig, build_targets
from benchmark.trainer import Objective, TrainConfig, companion_checkpoint

Method = Literal["kd", "textinit", "llmemb"]


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
    method: Method | None = None
    accepted_params: frozenset[str] = frozenset()
    model_class: type | None = None  # the neural backbone's class and its architecture config class
    config_class: type | None = None

    def build_backbone(self, n_items: int, architecture: dict[str, Any]) -> torch.nn.Module:
        """An untrained backbone of this model over `n_items` items (architecture params only)."""
        if self.model_class is None or self.config_class is None:
            raise ValueError(f"{self.backbone} is not a neural backbone")
        return self.model_class(n_items, self.config_class(**architecture))

    def target(self, params: dict[str, Any]) -> str | None:
        """The distillation target these params choose (None for a model that does not distil)."""
        return self.resolve(params).get("target", "llm") if self.method == "kd" else None

    def profile_settings(self, params: dict[str, Any]) -> ProfileSettings | None:
        """The LLM profile generator/encoder settings within `params` (None unless the fit needs every
        user's LLM profile, generated through the profile cache)."""
        if self.target(params) not in LLM_TARGETS:
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


def _popularity(name: str, build: Callable[..., Popularity], defaults: dict[str, Any]) -> ModelSpec:
    def resolve(params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(defaults)}")
        return defaults | params

    def fit(split: Split, params: dict[str, Any], context: FitContext) -> Fitted:
        rows = split.train_rows
        return Fitted(build(split.log.item[rows], split.log.timestamp[rows], split.log.n_items, **resolve(params)), {})

    return ModelSpec(fit, resolve, backbone=name, accepted_params=frozenset(defaults))


def _neural(name: str, model_class: type, config_class: type, method: Method | None = None) -> ModelSpec:
    """A transformer backbone: params are its architecture fields plus TrainConfig fields (plus, for
    distillation, TargetConfig, DistillConfig and ProfileSettings fields; for text-initialised item
    embeddings, TextInitConfig and ProfileSettings; for LLMEmb, LLMEmbConfig and ProfileSettings), except
    the seed, which is a run-level setting (the suite's `seeds`)."""
    extras: dict[Method | None, list[type]] = {None: [], "kd": [TargetConfig, DistillConfig, ProfileSettings],
                                               "textinit": [TextInitConfig, ProfileSettings],
                                               "llmemb": [LLMEmbConfig, ProfileSettings]}
    classes: list[type] = [config_class, TrainConfig, *extras[method]]

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
        objective, info = METHOD_SETUP[method](model, split, architecture, training, extra, context)
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


Setup = tuple[Objective | None, dict[str, Any]]


def _plain(model: torch.nn.Module, split: Split, architecture: Any, training: TrainConfig, extra: list[Any],
           context: FitContext) -> Setup:
    """A plain backbone: its own loss, nothing to prepare."""
    return None, {}


def _distillation(model: torch.nn.Module, split: Split, architecture: Any, training: TrainConfig, extra: list[Any],
                  context: FitContext) -> Setup:
    """The distillation objective towards the chosen targets."""
    choice, distillation, settings = extra
    resources = ProfileResources(settings, context.cache_dir)
    targets = build_targets(split, choice.target, resources, context.seed, progress=context.progress)
    objective = DistillationObjective(architecture.dim, targets.matrix, targets.has_target, distillation)
    return objective, {"targets": targets.encoder, "users_with_target": int(targets.has_target.sum())}


def _item_text_vectors(split: Split, settings: ProfileSettings, context: FitContext) -> tuple[Any, str]:
    """Every item's text embedded by the settings' encoder (cached), and the encoder's identity."""
    resources = ProfileResources(settings, context.cache_dir)
    texts = catalog_texts(split.log, settings.prompts.templates)
    return encode_cached(resources.encoder, texts, resources.store, progress=context.progress), resources.encoder.id


def _text_init(model: torch.nn.Module, split: Split, architecture: Any, training: TrainConfig, extra: list[Any],
               context: FitContext) -> Setup:
    """Item embeddings initialised (or adapted) from item text; the model's own loss."""
    initialisation, settings = extra
    vectors, encoder = _item_text_vectors(split, settings, context)
    apply_text_init(model, vectors, initialisation, context.seed)
    return None, {"item_text_encoder": encoder}


def _llmemb(model: torch.nn.Module, split: Split, architecture: Any, training: TrainConfig, extra: list[Any],
            context: FitContext) -> Setup:
    """LLMEmb: a SASRec with the model's architecture and training settings is trained first (LLMEmb's
    pre-trained SASRec, checkpointed beside the run so a paused run does not train it again); the model
    gets the adapted frozen text table and the alignment objective."""
    alignment, settings = extra
    vectors, encoder = _item_text_vectors(split, settings, context)
    torch.manual_seed(context.seed)
    common = {f.name: getattr(architecture, f.name) for f in fields(TransformerConfig)}
    teacher = SASRec(split.log.n_items, SASRecConfig(**common))
    checkpoint = None if context.checkpoint is None else companion_checkpoint(context.checkpoint, "teacher")
    pretrained = fit_backbone(teacher, split, training, evaluation=context.evaluation, checkpoint=checkpoint,
                              progress=context.progress, device=context.device, pause_when=context.pause_when)
    apply_llmemb(model, vectors)
    objective = AlignmentObjective(teacher.embedding.items.weight[: split.log.n_items + 1].cpu(), alignment)
    return objective, {"item_text_encoder": encoder, "pretrained_sasrec_best_val": pretrained.best_metric,
                       "pretrained_sasrec_seconds": pretrained.seconds}


METHOD_SETUP = {None: _plain, "kd": _distillation, "textinit": _text_init, "llmemb": _llmemb}


def _variants(name: str, model_class: type, config_class: type) -> dict[str, ModelSpec]:
    """The plain backbone, its distilled variant (any target), text-initialised item embeddings, LLMEmb."""
    return {name: _neural(name, model_class, config_class),
            f"{name}-kd": _neural(name, model_class, config_class, "kd"),
            f"{name}-textinit": _neural(name, model_class, config_class, "textinit"),
            f"{name}-llmemb": _neural(name, model_class, config_class, "llmemb")}


MODELS: dict[str, ModelSpec] = {
    "mostpop": _popularity("mostpop", most_pop, {}),
    "recentpop": _popularity("recentpop", recent_pop, {"window": 0.05}),
    **_variants("sasrec", SASRec, SASRecConfig),
    **_variants("bert4rec", BERT4Rec, BERT4RecConfig),
}


NEURAL_BACKBONES = [name for name, spec in MODELS.items() if spec.model_class is not None and spec.method is None]


def _historical_names() -> dict[str, tuple[str, dict[str, Any]]]:
    """The names runs were published under before targets became parameters: name -> (entry, params)."""
    return {f"{name}-{target}": (name, {"target": target}) for name, spec in MODELS.items() if spec.method == "kd"
            for target in DISTILL_TARGETS if target != "llm"}


HISTORICAL_NAMES = _historical_names()


def canonical_name(name: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """(registered name, the parameters a historical name implies): `sasrec-kd-shuffled` ->
    (`sasrec-kd`, {target: shuffled}); a registered name maps to itself, except a recorded run of the
    text-initialisation control, keyed as `<backbone>-llmemb` with its `llmemb_mode` parameter (given in
    `params`). Unknown names raise KeyError."""
    if name in MODELS:
        spec = MODELS[name]
        if spec.method == "llmemb" and "llmemb_mode" in (params or {}):
            return f"{spec.backbone}-textinit", {}
        return name, {}
    if name in HISTORICAL_NAMES:
        return HISTORICAL_NAMES[name]
    raise KeyError(f"unknown model '{name}'; registered: {sorted(MODELS)}")


def key_identity(name: str, resolved: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The (model name, params) that enter a run's key: a distilled model with a control target is keyed
    under its historical name without the `target` parameter, text-init under `<backbone>-llmemb` (the
    name it was published under; its `llmemb_mode` parameter tells it from LLMEmb: `canonical_name`)."""
    spec = MODELS[name]
    if spec.method == "textinit":
        return f"{spec.backbone}-llmemb", resolved
    if spec.method == "kd" and resolved.get("target", "llm") != "llm":
        return f"{name}-{resolved['target']}", {k: v for k, v in resolved.items() if k != "target"}
    return name, resolved


def get_model(name: str) -> ModelSpec:
    """A registered model; the error lists the registered names."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; registered: {sorted(MODELS)}") from None
