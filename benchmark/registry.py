"""Model registry: the names of the models (`MODELS`: name -> `ModelSpec`), and the names runs were
published under.

Every entry says what it is (`backbone`, and `method`: None for a plain model, `kd` for user-profile
distillation, `textinit` for item embeddings initialised from item text, `llmemb` for LLMEmb), so
reports, ablations and figures compare a variant with its backbone and a control with its method
without parsing names.
A distilled model's target is a parameter (`target: llm | shuffled | random | side_info |
side_info_mean | oracle`, see `benchmark/methods/targets.py`), not a name of its own.

Adding a backbone = its model file in `baselines/` + one `**_variants(...)` line in MODELS (which gives it
every method of `benchmark.methods.METHODS`); a fitted model is a `benchmark.interfaces.Recommender`.

Run keys keep the spelling under which runs were first published (`sasrec-kd-shuffled`; text-init as
`sasrec-llmemb` with its `llmemb_mode`: `key_identity`), so committed records stay valid; suites may
still use the control names (`canonical_name` maps them to the entry and parameter they stand for),
while `sasrec-llmemb` in a suite now means LLMEmb itself.
"""

from __future__ import annotations

from typing import Any

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.popularity import most_pop, recent_pop
from baselines.sasrec import SASRec, SASRecConfig
from benchmark.methods import METHODS
from benchmark.methods.targets import CONTROL_TARGETS, METHOD_TARGET
from benchmark.model_spec import ModelSpec, neural_spec, popularity_spec


def _variants(name: str, model_class: type, config_class: type) -> dict[str, ModelSpec]:
    """The backbone under every method of `METHODS`: `name` plain, `name-METHOD` otherwise."""
    return {name if method is None else f"{name}-{method}": neural_spec(name, model_class, config_class, method)
            for method in METHODS}


MODELS: dict[str, ModelSpec] = {
    "mostpop": popularity_spec("mostpop", most_pop, {}),
    "recentpop": popularity_spec("recentpop", recent_pop, {"window": 0.05}),
    **_variants("sasrec", SASRec, SASRecConfig),
    **_variants("bert4rec", BERT4Rec, BERT4RecConfig),
}


NEURAL_BACKBONES = [name for name, spec in MODELS.items() if spec.model_class is not None and spec.method is None]


def _historical_names() -> dict[str, tuple[str, dict[str, Any]]]:
    """The names runs were published under before targets became parameters: name -> (entry, params)."""
    return {f"{name}-{target}": (name, {"target": target}) for name, spec in MODELS.items()
            if spec.has_target for target in CONTROL_TARGETS}


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
    if spec.has_target and resolved.get("target", METHOD_TARGET) != METHOD_TARGET:  # already resolved
        return f"{name}-{resolved['target']}", {k: v for k, v in resolved.items() if k != "target"}
    return name, resolved


def get_model(name: str) -> ModelSpec:
    """A registered model; the error lists the registered names."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; registered: {sorted(MODELS)}") from None
