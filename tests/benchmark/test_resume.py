"""Killed, paused or out of budget anywhere, a suite resumes without duplicates or gaps; studies outlive the machine through their committed files."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from benchmark import paths, suite_executor, suite_plan
from benchmark.estimates import Estimates
from benchmark.profiles.generate import NOT_GENERATED, GenerationSummary, Profiles
from benchmark.run import main as run_cli
from benchmark.split import SplitConfig
from benchmark.studies import PAUSED, RESUMED, RETRY_OF, study_name
from benchmark.study_archive import archive_path
from benchmark.suite import ModelEntry
from benchmark.tune import main as tune_cli
from tests.benchmark.workspace import ROOT, TINY_SUITE, finished, records, workspace


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
