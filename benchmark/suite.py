"""Suite files: datasets x splits x models x seeds (+ search spaces and a tuning budget), as validated
plain data (YAML)."""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchmark.data.preprocess import PreprocessConfig
from benchmark.errors import DataError, describe_validation_error
from benchmark.metrics import EvaluationConfig
from benchmark.registry import HISTORICAL_NAMES, MODELS, canonical_name
from benchmark.split import SplitConfig

SUITES_DIR = Path(__file__).parent / "suites"
RECIPES_FILE = Path(__file__).parent / "recipes.yaml"


class Recipe(BaseModel):
    """A published training recipe: `params` for every model, `distill` for distilled models only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    params: dict[str, Any]
    distill: dict[str, Any] = {}


@cache
def load_recipes(path: Path = RECIPES_FILE) -> dict[str, Recipe]:
    """The named recipes of a recipes file (read once per file); errors name the file and the key."""
    try:
        return {name: Recipe.model_validate(value) for name, value in yaml.safe_load(path.read_text()).items()}
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise DataError(f"{path}: cannot read recipes ({error})") from None
    except ValidationError as error:
        raise DataError(f"{path}: {describe_validation_error(error)}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetEntry(_Strict):
    """A registered dataset `name`, or the path of a generic CSV dataset YAML, or an inline generic `config`;
    `splits` replaces the suite's splits for this dataset (small datasets need other targets)."""

    name: str | None = None
    config: dict[str, Any] | None = None
    preprocessing: PreprocessConfig = PreprocessConfig()
    splits: list[SplitConfig] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> DatasetEntry:
        if (self.name is None) == (self.config is None):
            raise ValueError("give exactly one of 'name' and 'config'")
        return self

    @property
    def source(self) -> str | dict[str, Any]:
        """What `load_dataset` receives."""
        return self.config if self.config is not None else str(self.name)

    @property
    def label(self) -> str:
        """Display name: the dataset's `name` (also for a dataset given as the path of its YAML file)."""
        if self.config is not None:
            return str(self.config.get("name"))
        path = Path(str(self.name))
        if path.suffix in (".yaml", ".yml") and path.is_file():
            with contextlib.suppress(yaml.YAMLError, AttributeError, OSError):
                return str(yaml.safe_load(path.read_text()).get("name") or path.stem)
            return path.stem
        return str(self.name)


class ParamRange(_Strict):
    """One hyperparameter's search space: `choices`, or a `low`..`high` range (integers when both
    bounds are integers; `log` for a log scale, `step` for a grid)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give either a non-empty 'choices' list or 'low' and 'high'")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("a range needs 'low' < 'high'")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs 'low' > 0")
        return self

    @property
    def is_int(self) -> bool:
        """Whether the range is over integers."""
        return self.choices is None and float(self.low).is_integer() and float(self.high).is_integer() \
            and (self.step is None or float(self.step).is_integer()) and not self.log

    @property
    def examples(self) -> list[Any]:
        """Values at the edges of the space (used to validate that the model accepts them)."""
        if self.choices is not None:
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.is_int else [self.low, self.high]


class TuningConfig(_Strict):
    """The tuning budget: Optuna trials per study, sampler seed, pruner on per-epoch validation NDCG@10.
    The first `startup_trials` finished trials are sampled at random (TPE after), and the median pruner
    waits for as many. Trials train with `seed` (the suite's seeds are for the final runs)."""

    trials: int = Field(20, ge=1)
    seed: int = 0
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = Field(4, ge=0)
    warmup_epochs: int = Field(5, ge=0)


class ModelEntry(_Strict):
    """A registered model, its fixed parameters, an optional display label and dataset restriction.

    `search` declares the parameters Optuna tunes (one study per dataset and split); `params_from`
    names an earlier entry whose final (fixed + tuned) parameters this one starts from, keeping those
    it accepts: a control gets the method's settings, a distilled model its backbone's. `recipe` names a
    recipe of `benchmark/recipes.yaml` whose parameters the model accepts are put under `params`. An
    entry's own `params` and tuned values go on top. A distilled entry's `target` (llm, shuffled, random,
    side_info, side_info_mean, oracle) is its `target` parameter; a control's label defaults to
    `NAME-TARGET` (e.g. `sasrec-kd-shuffled`).
    """

    name: str
    label: str | None = None
    recipe: str | None = None
    params: dict[str, Any] = {}
    datasets: list[str] | None = None
    search: dict[str, ParamRange] = {}
    params_from: str | None = None

    @property
    def display(self) -> str:
        """The label shown in tables and used in record file names."""
        return self.label or self.name

    def applies_to(self, dataset: str) -> bool:
        """Whether this entry runs on `dataset`."""
        return self.datasets is None or dataset in self.datasets

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """A historical name (`sasrec-kd-shuffled`) and a `target` key become the registered name plus the
        `target` parameter (labelled as before, so records and studies keep their names); then the recipe."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("name") in HISTORICAL_NAMES:
            name, implied = canonical_name(data["name"])
            data = data | {"name": name, "label": data.get("label") or data["name"],
                           "params": implied | dict(data.get("params") or {})}
        if "target" in data:
            target = data.pop("target")
            if target != "llm" and not data.get("label"):
                data["label"] = f"{data.get('name')}-{target}"
            data["params"] = dict(data.get("params") or {}) | {"target": target}
        return cls._with_recipe(data)

    @staticmethod
    def _with_recipe(data: dict[str, Any]) -> dict[str, Any]:
        if data.get("recipe") is None or data.get("name") not in MODELS:
            return data
        recipes = load_recipes()
        recipe = recipes.get(data["recipe"])
        if recipe is None:
            raise ValueError(f"recipe: unknown recipe {data['recipe']!r}; known: {sorted(recipes)} ({RECIPES_FILE})")
        accepted = MODELS[data["name"]].accepted_params
        offered = recipe.params | recipe.distill
        return data | {"params": {k: v for k, v in offered.items() if k in accepted} | dict(data.get("params") or {})}

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model; registered: {sorted(MODELS)}")
        return value

    @model_validator(mode="after")
    def _valid_params(self) -> ModelEntry:
        MODELS[self.name].resolve(self.params)  # raises ValueError naming the bad parameter
        for key, space in self.search.items():
            for value in space.examples:
                try:
                    MODELS[self.name].resolve(self.params | {key: value})
                except (ValueError, TypeError) as error:
                    raise ValueError(f"search.{key}: {value!r} is not accepted by {self.name} ({error})") from None
        both = sorted(set(self.search) & set(self.params))
        if both:
            raise ValueError(f"search: {both} are also fixed in params; keep each parameter in one place")
        return self

    @property
    def resolved_params(self) -> dict[str, Any]:
        """Every parameter, defaults included (what enters the run key)."""
        return MODELS[self.name].resolve(self.params)


class Suite(_Strict):
    """A whole benchmark: every combination of dataset, split, model and seed is one run."""

    name: str
    description: str = ""
    datasets: list[DatasetEntry] = Field(min_length=1)
    splits: list[SplitConfig] = Field([SplitConfig()], min_length=1)
    evaluation: EvaluationConfig = EvaluationConfig()
    # further evaluations of every final run's model (e.g. with seen items filtered), reported as extra
    # tables; they change no run's training, so they stay out of run keys
    extra_evaluations: dict[str, EvaluationConfig] = {}
    models: list[ModelEntry] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    tuning: TuningConfig = TuningConfig()
    # relative margin of the report's equivalence tests (None: derived from analysis/claims.yaml)
    equivalence_margin: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        labels = [m.display for m in self.models]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        if duplicated:
            raise ValueError(f"models: labels must be unique, repeated: {duplicated} (set 'label')")
        known = {d.label for d in self.datasets}
        for index, model in enumerate(self.models):
            unknown = sorted(set(model.datasets or ()) - known)
            if unknown:
                raise ValueError(f"models.{index}.datasets: {unknown} not among the suite's datasets {sorted(known)}")
            earlier = labels[:index]
            if model.params_from is not None and model.params_from not in earlier:
                raise ValueError(f"models.{index}.params_from: {model.params_from!r} is not an earlier model "
                                 f"entry of this suite (earlier: {earlier})")
        return self

    def splits_of(self, dataset: DatasetEntry) -> list[SplitConfig]:
        """The splits a dataset is run under."""
        return dataset.splits or self.splits

    def model(self, label: str) -> ModelEntry:
        """The entry with this display label."""
        return next(m for m in self.models if m.display == label)


def load_suite(name_or_path: str | Path) -> Suite:
    """Load a suite by name (benchmark/suites/NAME.yaml) or path; errors name the file and key."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise DataError(f"suite '{name_or_path}' not found ({path}); shipped suites: {known}")
    try:
        return Suite.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as error:
        raise DataError(f"{path}: invalid YAML ({error})") from None
    except ValidationError as error:
        raise DataError(f"{path}: {describe_validation_error(error)}") from None
