"""MLflow tracking: every finished run and every Optuna trial becomes an MLflow run.

One experiment per suite. A final run carries its resolved parameters, per-epoch training and
validation metrics (step = epoch), test metrics, tags (run key, git commit, data checksum, split,
profile generator and encoder) and artifacts (resolved config, run record, per-user test metrics as
parquet). Trials are nested under one parent run per Optuna study. Logging is idempotent: a run whose
key is already in the experiment is not logged again, so a resumed suite never duplicates a run.

The default tracking URI is a local SQLite database with an artifact folder next to it (embedded,
nothing to start); `--tracking-uri http://host:5000` logs to an MLflow server instead.

`python -m benchmark.tracking import --suite NAME` logs a suite's recorded final runs (its records
folder: `results/runs/NAME` for a published suite) into the store, so that `mlflow ui` and
`python -m analysis.report` show the published runs on a fresh clone without training anything. Where
`results/manifest-NAME.csv` lists the reported runs, only those are imported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark import paths
from benchmark.cli import run_command
from benchmark.errors import DataError
from benchmark.records import (
    BEST_VALUE_METRIC,
    KIND_FINAL,
    KIND_STUDY,
    KIND_TRIAL,
    TRIAL_SECONDS_METRIC,
    RunRecord,
    metric_name,
    read_per_user,
    read_records,
)
from benchmark.stores import check_tracking_uri

if TYPE_CHECKING:  # MLflow (seconds to import) is imported where used: `--help` answers at once
    import pandas as pd
    from mlflow.entities import Metric
    from optuna.trial import FrozenTrial

BATCH = 100  # MLflow accepts at most 100 params and 1000 metrics per call
RECORD_ARTIFACT, PER_USER_ARTIFACT = "record.json", "per_user_test_metrics.parquet"


def default_tracking_uri(cache_dir: str | Path | None = None) -> str:
    """The embedded store: <cache>/mlflow/mlflow.db (artifacts in <cache>/mlflow/artifacts)."""
    folder = paths.cache_dir(cache_dir) / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


@cache
def git_commit() -> str:
    """The checked-out commit of this code ('unknown' outside a git work tree)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Tracker:
    """Logs runs and trials of one suite into one MLflow experiment."""

    def __init__(self, uri: str, suite: str, description: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(uri)
        self.experiment_id = self._experiment(suite)
        if description:  # what the MLflow UI shows as the experiment's description
            self.client.set_experiment_tag(self.experiment_id, "mlflow.note.content", description)

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        artifacts = None
        if self.uri.startswith("sqlite:///"):  # embedded store: artifacts next to the database
            artifacts = (Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts" / name).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # another worker created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def find(self, **tags: str) -> list:
        """Runs of the experiment whose tags have these values."""
        condition = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return list(self.client.search_runs([self.experiment_id], filter_string=condition))

    def log_final(self, record: RunRecord, per_user: pd.DataFrame, path: Path | None = None) -> str:
        """Log a finished run (once: an existing run with the same key is returned instead), timed as it
        ran: ending when its record says it finished (see `finish_time`; `path`: the record's file)."""
        from mlflow.entities import Metric

        existing = self.find(run_key=record.key, kind=KIND_FINAL)
        if existing:
            return existing[0].info.run_id
        finished, source = finish_time(record, path)
        run = self.client.create_run(
            self.experiment_id, run_name=f"{record.dataset} · {record.label} · seed {record.seed}",
            start_time=int(1000 * (finished - record.seconds)),
            tags={**record.mlflow_tags(), "git_commit": git_commit(), "finished_from": source})
        run_id = run.info.run_id
        metrics = _history_metrics(record.history) + [Metric(k, v, 0, 0) for k, v in record.mlflow_metrics().items()]
        self._log(run_id, record.mlflow_params(), metrics)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "config.json").write_text(json.dumps(record.spec.as_dict(), indent=2, default=str))
            (Path(folder) / RECORD_ARTIFACT).write_text(json.dumps(record.to_json(), indent=2, default=str))
            per_user.to_parquet(Path(folder) / PER_USER_ARTIFACT)
            for name in ("config.json", RECORD_ARTIFACT, PER_USER_ARTIFACT):
                self.client.log_artifact(run_id, str(Path(folder) / name))
        self.client.set_terminated(run_id, end_time=int(1000 * finished))
        return run_id

    def log_trial(self, study: str, trial: FrozenTrial, tags: dict[str, str]) -> None:
        """Log a finished Optuna trial as a run nested under the study's parent run (once)."""
        from mlflow.entities import Metric

        if trial.user_attrs.get("over_budget") or self.find(study=study, trial=str(trial.number)):
            return
        parents = self.find(study=study, kind=KIND_STUDY)
        if parents:
            parent = parents[0].info.run_id
        else:
            parent = self.client.create_run(self.experiment_id, run_name=f"tune {study}",
                                            tags={"kind": KIND_STUDY, "study": study, **tags}).info.run_id
        run = self.client.create_run(
            self.experiment_id, run_name=f"{study} trial {trial.number}",
            tags={"kind": KIND_TRIAL, "study": study, "trial": str(trial.number), "state": trial.state.name,
                  "mlflow.parentRunId": parent, "git_commit": git_commit(), **tags})
        metrics = _history_metrics(trial.user_attrs.get("history", []))
        if trial.value is not None:
            metrics.append(Metric(metric_name(BEST_VALUE_METRIC), float(trial.value), 0, 0))
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
            metrics.append(Metric(TRIAL_SECONDS_METRIC, seconds, 0, 0))
        self._log(run.info.run_id, trial.params, metrics)
        self.client.set_terminated(run.info.run_id, status="FINISHED" if trial.state.name != "FAIL" else "FAILED")

    def _log(self, run_id: str, params: dict[str, Any], metrics: list[Metric]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(run_id, params=items[start:start + BATCH])
        for start in range(0, len(metrics), 10 * BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + 10 * BATCH])


def finish_time(record: RunRecord, path: Path | None) -> tuple[float, str]:
    """(when the run finished, as a Unix time; where that comes from): the record's own `finished` time;
    for a record written before records kept it, the time of the commit that added its file (an upper
    bound); else now (a record just written and not committed)."""
    if record.finished:
        return datetime.fromisoformat(record.finished).timestamp(), "record"
    if path is not None:
        added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%ct", "-1", "--", path.name],
                               capture_output=True, text=True, cwd=path.parent).stdout.strip()
        if added:
            return float(added), "git commit of the record"
    return time.time(), "logging time"


def _history_metrics(history: Iterable[dict[str, float]]) -> list[Metric]:
    """Per-epoch metrics with step = epoch (what the MLflow UI plots as training curves)."""
    from mlflow.entities import Metric

    return [Metric(metric_name(name), float(value), 0, int(row["epoch"]))
            for row in history for name, value in row.items() if name != "epoch"]


def import_records(tracker: Tracker, folder: Path, keys: set[str] | None = None) -> int:
    """Log every final-run record under `folder` (only those whose key is in `keys`, if given) that the
    store does not hold yet; returns how many records were considered."""
    considered = 0
    for path, record in read_records(folder):
        if keys is None or record.key in keys:
            tracker.log_final(record, read_per_user(path, record), path)
            considered += 1
    return considered


def suite_description(suite: str) -> str | None:
    """The suite file's description (None for a suite no longer shipped)."""
    from benchmark.suite import load_suite

    try:
        return load_suite(suite).description or None
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tracking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    importer = commands.add_parser("import", help="log a suite's recorded final runs into the tracking store")
    importer.add_argument("--suite", required=True)
    importer.add_argument("--records", type=Path, help="records folder (default: the suite's)")
    importer.add_argument("--cache-dir")
    importer.add_argument("--tracking-uri")
    importer.add_argument("-v", "--verbose", action="store_true", help="show MLflow's INFO logs")
    args = parser.parse_args(argv)
    return run_command(lambda: _import(args), args.verbose)


def _import(args: argparse.Namespace) -> int:
    import pandas as pd

    folder = args.records or paths.records_dir(args.suite, args.cache_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: no records folder for suite {args.suite}")
    manifest = paths.RESULTS_DIR / f"manifest-{args.suite}.csv"
    keys = set(pd.read_csv(manifest)["run_key"]) if manifest.is_file() and args.records is None else None
    if args.tracking_uri is not None:
        check_tracking_uri(args.tracking_uri)
    uri = args.tracking_uri or default_tracking_uri(args.cache_dir)
    count = import_records(Tracker(uri, args.suite, suite_description(args.suite)), folder, keys)
    print(f"{count} final runs of {args.suite} from {folder} in {uri}\nbrowse them with: mlflow ui --backend-store-uri {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
