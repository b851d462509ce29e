"""The one loader of a suite's final runs for every analysis: `FinalRun` (a run record with its per-user
test metrics), read from a records folder (`load_records`, the default: the committed
`results/runs/SUITE` of a published suite, nothing to import) or from an MLflow tracking store
(`load_from_mlflow`, where the runs of a suite were logged on other machines); and the names every
table and figure shares (the metrics, the primary one, the marks).

Where several records stand for one (dataset, split, entry, seed), a run whose key changed (a new model
setting, a new code version) supersedes the older one instead of being counted twice: the later one
wins (the later start in MLflow, the later path in a records folder, as `benchmark.tracking import`
logs them).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark import paths
from benchmark.errors import DataError
from benchmark.records import KIND_FINAL, KIND_TRIAL, TRIAL_SECONDS_METRIC, RunRecord, read_per_user, read_records

if TYPE_CHECKING:  # pandas and MLflow are imported where used
    import pandas as pd

PRIMARY = "ndcg@10"
METRICS = [f"{name}@{k}" for name in ("ndcg", "hr", "mrr") for k in (5, 10, 20)]
LEAKY_MARK = "†"
EXTRA_EVALUATION = "; evaluation "  # how a table of an extra evaluation names it in its split label


@dataclass(frozen=True)
class FinalRun:
    """One recorded final run: its record and per-user test metrics."""

    record: RunRecord
    per_user: pd.DataFrame

    @property
    def label(self) -> str:
        """The model entry's label."""
        return self.record.label

    @property
    def group(self) -> tuple[str, str]:
        """(dataset, split description): the runs of one table."""
        quantile, target, validation, *others = self.record.split_config().label_parts()
        name = self.record.evaluation_name
        extra = f"{EXTRA_EVALUATION}{name}" if name else ""
        return self.record.dataset, ", ".join([f"q={quantile[1:]}", f"target {target}", f"validation {validation}",
                                               *others]) + extra


def latest(runs: list[FinalRun]) -> list[FinalRun]:
    """The runs with each (dataset, split, label, seed) kept once, its last run in `runs`' order winning;
    a note on stderr says how many were superseded."""
    kept = {(*run.group, run.label, run.record.seed): run for run in runs}
    if len(kept) < len(runs):
        print(f"{len(runs) - len(kept)} final run(s) superseded by a later run of the same dataset, split, "
              "model label and seed: left out", file=sys.stderr)
    return list(kept.values())


def load_records(folder: Path) -> list[FinalRun]:
    """The latest final run of each (dataset, split, label, seed) recorded under `folder`."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no run records (run the suite first, or name its records with --records)")
    records = sorted(read_records(folder), key=lambda found: found[1].finished or "")  # stable: path order kept
    return latest([FinalRun(record, read_per_user(path, record)) for path, record in records])


def load_suite_runs(suite: str, records: Path | None = None, tracking_uri: str | None = None,
                    cache_dir: str | None = None) -> list[FinalRun]:
    """A suite's final runs: from `tracking_uri` when given, else from `records` (default: the suite's
    records folder, `results/runs/SUITE` for a published suite)."""
    if tracking_uri is not None:
        return load_from_mlflow(tracking_uri, suite)
    return load_records(records or paths.records_dir(suite, cache_dir))


def load_from_mlflow(tracking_uri: str, suite: str) -> list[FinalRun]:
    """The latest final run of each (dataset, split, label, seed) in the suite's MLflow experiment, with
    its record and per-user metrics read back from the run's artifacts."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from benchmark.tracking import PER_USER_ARTIFACT, RECORD_ARTIFACT

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(suite)
    if experiment is None:
        raise DataError(f"no MLflow experiment '{suite}' at {tracking_uri}: run the suite first, or report its "
                        "records (leave out --tracking-uri)")
    found = client.search_runs([experiment.experiment_id], f"tags.kind = '{KIND_FINAL}'", max_results=10000,
                               order_by=["attributes.start_time ASC"])
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for run in found:
            target = Path(folder) / run.info.run_id
            target.mkdir()
            stored = Path(client.download_artifacts(run.info.run_id, RECORD_ARTIFACT, str(target)))
            record = RunRecord.from_json(json.loads(stored.read_text()))
            per_user = pd.read_parquet(client.download_artifacts(run.info.run_id, PER_USER_ARTIFACT, str(target)))
            runs.append(FinalRun(record, per_user))
    return latest(runs)


def tuning_effort(tracking_uri: str, suite: str, studies: set[str]) -> tuple[int, float]:
    """(trials, hours of wall time) the suite's MLflow experiment records for these Optuna studies (the
    run records carry no trials)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(suite)
    trials = client.search_runs([experiment.experiment_id], f"tags.kind = '{KIND_TRIAL}'", max_results=50000)
    seconds = [t.data.metrics.get(TRIAL_SECONDS_METRIC, 0.0) for t in trials if t.data.tags.get("study") in studies]
    return len(seconds), sum(seconds) / 3600


def studies_of(runs: list[FinalRun]) -> set[str]:
    """The Optuna studies whose best parameters the runs use."""
    return {r.record.study for r in runs if r.record.study}


def seed_averaged(runs: list[FinalRun], metric: str) -> pd.Series:
    """Per-user `metric` averaged over the runs (the seeds of one entry)."""
    from analysis.stats import user_means

    return user_means([run.per_user[metric] for run in runs])
