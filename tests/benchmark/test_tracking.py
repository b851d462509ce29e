"""MLflow: records without it (`--tracking-uri none`) and imported later; a real MLflow server."""

from __future__ import annotations

import subprocess
import sys

from mlflow.tracking import MlflowClient

from benchmark.run import main as run_cli
from benchmark.tracking import main as tracking_cli
from tests.benchmark.workspace import ROOT, records, start_mlflow, workspace


def test_tracking_none_records_the_suite_without_importing_mlflow_and_import_logs_it_later(tmp_path, profile_cache):
    """`--tracking-uri none` is for machines without MLflow (a lent GPU): the run records are written as
    usual, MLflow is never imported, and `benchmark.tracking import` logs the records afterwards."""
    cache, args = workspace(tmp_path, profile_cache, name="untracked", trials=1)
    without_mlflow = ("import sys\n"
                      "sys.modules['mlflow'] = None  # as if not installed: importing it fails\n"
                      "from benchmark.run import main\n"
                      "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", without_mlflow, *args, "--tracking-uri", "none"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = records(tmp_path / "runs")
    assert len(runs) == 6 and not (cache / "mlflow").exists()
    assert f"--records {tmp_path / 'runs'}" in result.stdout

    uri = f"sqlite:///{tmp_path / 'later' / 'mlflow.db'}"
    assert tracking_cli(["import", "--suite", "untracked", "--records", str(tmp_path / "runs"), "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    finals = client.search_runs([client.get_experiment_by_name("untracked").experiment_id], "tags.kind = 'final'")
    assert sorted(r.data.tags["run_key"] for r in finals) == sorted(r.key for r in runs)


def test_runs_are_logged_to_a_real_mlflow_server(tmp_path, profile_cache):
    _, args = workspace(tmp_path, profile_cache, name="served")
    server, url = start_mlflow(["server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                                "--artifacts-destination", str(tmp_path / "server-artifacts")])
    try:
        assert run_cli(args + ["--tracking-uri", url, "--only", "model=mostpop"]) == 0
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("served")
        finals = client.search_runs([experiment.experiment_id], "tags.kind = 'final'")
        assert len(finals) == 2 and {r.data.params["seed"] for r in finals} == {"0", "1"}
        assert "per_user_test_metrics.parquet" in {a.path for a in client.list_artifacts(finals[0].info.run_id)}
        assert list((tmp_path / "server-artifacts").rglob("per_user_test_metrics.parquet"))
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_imported_runs_show_when_they_ran_a_readable_name_and_the_suite_description(tmp_path):
    """MLflow's "Created" and duration come from the record (its finish time less its fit and evaluation
    time), not from the import; a record older than `finished` takes the commit that added it."""
    import pandas as pd

    from benchmark.records import RunRecord, RunSpec, read_records
    from benchmark.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = RunSpec("synthetic", "amazon-beauty", "fingerprint", {"quantile": 0.9}, {}, "sasrec-kd",
                   "sasrec-kd-beta_off-shuffled", {"lr": 0.001}, 2)
    record = RunRecord(spec, {}, {"ndcg@10": 0.02}, {}, 600.0, 30.0, "per_user.csv.gz",
                       finished="2026-12-01T10:00:00+00:00")
    tracker = Tracker(uri, "synthetic", "one knob at a time")
    run = MlflowClient(uri).get_run(tracker.log_final(record, pd.DataFrame({"ndcg@10": [0.02]})))
    assert run.info.run_name == "amazon-beauty · sasrec-kd-beta_off-shuffled · seed 2"
    finished = 1_796_119_200_000  # 2026-12-01 10:00 UTC in milliseconds
    assert run.info.end_time == finished and run.info.start_time == finished - 630_000
    assert run.data.tags["finished_from"] == "record"
    experiment = MlflowClient(uri).get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.note.content"] == "one knob at a time"

    path, published = read_records(ROOT / "results" / "runs" / "kd-ml1m")[0]  # written before `finished`
    run = MlflowClient(uri).get_run(tracker.log_final(published, pd.DataFrame({"ndcg@10": [0.0]}), path))
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%ct", "-1", "--", path.name], cwd=path.parent,
                           capture_output=True, text=True).stdout.strip()
    assert run.data.tags["finished_from"] == "git commit of the record" and run.info.end_time == int(added) * 1000
