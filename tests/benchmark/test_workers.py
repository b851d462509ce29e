"""Several workers share one PostgreSQL study and the final-run queue, each run done once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import benchmark
from benchmark.run_queue import RunQueue
from benchmark.split import SplitConfig
from benchmark.studies import study_name
from tests.benchmark.workspace import ROOT, records, workspace


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
