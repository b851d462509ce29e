"""Run records: what identifies a final run (`RunSpec`), what it produced (`RunRecord`), where its record
lives, and the names it has in MLflow. Every other module reads records through this one.

A record is a JSON file `<output>/<dataset>/<label>-<key>.json` (its presence means the run is done)
next to the run's per-user test metrics (`.per_user.csv.gz`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchmark
from benchmark.errors import DataError
from benchmark.files import atomic_output

if TYPE_CHECKING:  # imported where used: reading records (commands, tracking) needs no torch
    import pandas as pd

    from benchmark.split import SplitConfig

# MLflow: tags and metric names of final runs, studies and trials
KIND_FINAL, KIND_STUDY, KIND_TRIAL = "final", "study", "trial"
BEST_VALUE_METRIC = "best_val_ndcg@10"
TRIAL_SECONDS_METRIC = "trial_seconds"


def metric_name(name: str) -> str:
    """MLflow's spelling of a metric name ('@' is not allowed): ndcg@10 -> ndcg_at_10."""
    return name.replace("@", "_at_")


def split_tag(split: dict[str, Any]) -> str:
    """The split as a short tag: q<quantile>/<target>/<validation>, then every other field that differs
    from its default (`/name=value`)."""
    from benchmark.split import SplitConfig

    return "/".join(SplitConfig(**split).label_parts())


@dataclass(frozen=True)
class RunSpec:
    """The fully resolved configuration of a run (the `config` of its record)."""

    suite: str
    dataset: str
    data_fingerprint: str
    split: dict[str, Any]
    evaluation: dict[str, Any]
    model: str
    label: str
    params: dict[str, Any]
    seed: int
    profiles: str | None = None  # identity of the profile generator + encoder, for models that distil
    code_version: str = benchmark.__version__

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form, including the code version that enters the key."""
        plain = {"suite": self.suite, "dataset": self.dataset, "data_fingerprint": self.data_fingerprint,
                 "split": self.split, "evaluation": self.evaluation, "model": self.model,
                 "label": self.label, "params": self.params, "seed": self.seed, "code_version": self.code_version}
        return plain | ({"profiles": self.profiles} if self.profiles else {})

    @classmethod
    def from_dict(cls, plain: dict[str, Any]) -> RunSpec:
        """The inverse of `as_dict`."""
        return cls(**plain)

    @property
    def key(self) -> str:
        """Stable hash of the resolved configuration + data fingerprint + profile identity + code version
        (not the label)."""
        identity = {k: v for k, v in self.as_dict().items() if k != "label"}
        canonical = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Tuning:
    """Where a final run's tuned parameters come from: the study, its best trial and value, and how many
    trials the study had finished."""

    study: str
    best_trial: int
    best_value: float
    trials: int


@dataclass(frozen=True)
class Variant:
    """What a run's model is: its backbone, its method (a row of `benchmark.methods.METHODS`: None, `kd`,
    `textinit`, `llmemb`) and, for a method with targets, its target (`llm` for the method itself, else a
    control)."""

    backbone: str
    method: str | None = None
    target: str | None = None

    @property
    def leaky(self) -> bool:
        """Whether the model uses test-period information (a target marked leaky, e.g. `oracle`): reported,
        never ranked."""
        from benchmark.methods.targets import TARGETS

        return self.target is not None and TARGETS[self.target].leaky

    @property
    def is_method(self) -> bool:
        """Whether this is a distillation method itself (the method's target: LLM profiles), not a control."""
        from benchmark.methods.targets import METHOD_TARGET

        return self.target == METHOD_TARGET


def variant_of(model: str, params: dict[str, Any]) -> Variant:
    """The variant a recorded model name and its params stand for (also under historical names)."""
    from benchmark.registry import MODELS, canonical_name

    name, implied = canonical_name(model, params)
    spec = MODELS[name]
    return Variant(spec.backbone, spec.method, spec.target(params | implied))


@dataclass
class RunRecord:
    """A finished final run: its configuration, test metrics (plus any extra evaluations), what its fit
    reported (best epoch, per-epoch history, β...), timings, tuning provenance and host."""

    spec: RunSpec
    split_report: dict[str, Any]
    test: dict[str, float]
    fit: dict[str, Any]
    fit_seconds: float
    eval_seconds: float
    per_user_file: str
    tuning: Tuning | None = None
    host: dict[str, Any] | None = None
    test_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: str | None = None  # when the run ended (ISO 8601, UTC); records written before it was kept: None
    cached: bool = False  # read from an earlier command's record (not serialised)
    evaluation_name: str | None = None  # set on a view of the record under one of its extra evaluations

    @property
    def key(self) -> str:
        """The run key."""
        return self.spec.key

    @property
    def dataset(self) -> str:
        """The dataset's label."""
        return self.spec.dataset

    @property
    def label(self) -> str:
        """The model entry's label."""
        return self.spec.label

    @property
    def seed(self) -> int:
        """The run's seed."""
        return self.spec.seed

    @property
    def variant(self) -> Variant:
        """What the model is (backbone, method, target)."""
        return variant_of(self.spec.model, self.spec.params)

    @property
    def seconds(self) -> float:
        """Wall time of fit + evaluation."""
        return self.fit_seconds + self.eval_seconds

    @property
    def history(self) -> list[dict[str, float]]:
        """Per-epoch training and validation metrics."""
        return self.fit.get("history", [])

    @property
    def study(self) -> str | None:
        """The Optuna study whose best parameters the run uses."""
        return self.tuning.study if self.tuning else None

    @property
    def test_users(self) -> int:
        """How many users the test evaluated."""
        return int(self.split_report["test_users"])

    def split_config(self) -> SplitConfig:
        """The split the run was trained and tested on."""
        from benchmark.split import SplitConfig

        return SplitConfig(**self.spec.split)

    def to_json(self) -> dict[str, Any]:
        """The record file's content."""
        return {"key": self.key, "config": self.spec.as_dict(), "split_report": self.split_report, "test": self.test,
                **({"test_extra": self.test_extra} if self.test_extra else {}), "fit": self.fit,
                "fit_seconds": self.fit_seconds, "tuning": asdict(self.tuning) if self.tuning else None, "host": self.host,
                "eval_seconds": self.eval_seconds, "per_user": self.per_user_file,
                **({"finished": self.finished} if self.finished else {})}

    @classmethod
    def from_json(cls, plain: dict[str, Any], cached: bool = False) -> RunRecord:
        """A record from its file's content; a record whose key does not match its configuration is an error."""
        spec = RunSpec.from_dict(plain["config"])
        if spec.key != plain["key"]:
            raise ValueError(f"run record {plain['key']}: its configuration hashes to {spec.key}")
        return cls(spec, plain["split_report"], plain["test"], plain["fit"], plain["fit_seconds"],
                   plain["eval_seconds"], plain["per_user"], Tuning(**plain["tuning"]) if plain.get("tuning") else None,
                   plain.get("host"), plain.get("test_extra", {}), plain.get("finished"), cached)

    def with_evaluation(self, name: str) -> RunRecord:
        """The record as extra evaluation `name` saw it: that evaluation's means as `test`."""
        return replace(self, test=self.test_extra[name]["test"], test_extra={}, evaluation_name=name)

    def mlflow_params(self) -> dict[str, Any]:
        """The run's parameters as MLflow shows them."""
        config = self.spec
        params = {**config.params, **{f"split.{k}": v for k, v in config.split.items()}, "seed": config.seed,
                  "model": config.model, "dataset": config.dataset}
        if self.tuning:
            params |= {"tuning.study": self.tuning.study, "tuning.best_trial": self.tuning.best_trial}
        return params

    def mlflow_metrics(self) -> dict[str, float]:
        """The run's single-value metrics as MLflow names them (test, extra evaluations, timings, β)."""
        metrics = {metric_name(f"test_{k}"): float(v) for k, v in self.test.items()}
        metrics |= {"fit_seconds": float(self.fit_seconds), "eval_seconds": float(self.eval_seconds)}
        metrics |= {k: float(v) for k, v in self.fit.items() if k in ("beta_first", "beta_last")}
        return metrics | {metric_name(f"test_{name}_{k}"): float(v)
                          for name, extra in self.test_extra.items() for k, v in extra["test"].items()}

    def mlflow_tags(self) -> dict[str, str]:
        """The run's MLflow tags."""
        config = self.spec
        return {"run_key": self.key, "kind": KIND_FINAL, "suite": config.suite, "dataset": config.dataset,
                "model": config.model, "data_fingerprint": config.data_fingerprint, "split": split_tag(config.split),
                **({"profiles": config.profiles} if config.profiles else {})}


def result_path(output: Path, spec: RunSpec) -> Path:
    """Where a finished run's record lives; its presence means the run is done."""
    return output / spec.dataset / f"{spec.label}-{spec.key}.json"


def write_record(path: Path, record: RunRecord) -> None:
    """Write a record so that a reader never sees a partial file (a killed run leaves no record)."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(record.to_json(), indent=2, default=str))


def read_record(path: Path, cached: bool = False) -> RunRecord:
    """The record stored at `path`; a truncated or hand-edited one (unreadable JSON, missing fields, a
    configuration that no longer hashes to its key or to the key in its file name) is a `DataError`
    naming the file, so that it is neither counted nor silently trained again."""
    try:
        record = RunRecord.from_json(json.loads(path.read_text()), cached)
        problem = None if path.stem.endswith(f"-{record.key}") else f"its content is run {record.key}, its name says otherwise"
    except (ValueError, KeyError, TypeError) as error:
        problem = f"missing field {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
    if problem is not None:
        raise DataError(f"{path}: corrupt run record ({problem}); restore it (git checkout) or delete it to train "
                        "the run again")
    return record


def read_per_user(path: Path, record: RunRecord) -> pd.DataFrame:
    """The per-user test metrics of the record stored at `path`."""
    import pandas as pd

    return pd.read_csv(path.parent / record.per_user_file, index_col=0)


def read_records(folder: Path) -> list[tuple[Path, RunRecord]]:
    """Every record under `folder` (recursively), in path order."""
    return [(path, read_record(path)) for path in sorted(folder.rglob("*.json"))]
