"""Studies as committed files: a study restored into an empty storage has the same trials (numbers, states,
values, parameters, pruning reports), gaps keep their numbers, and a study known only from final-run
records keeps its best trial and its trial count without being tuned again."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from benchmark.records import RunRecord, RunSpec, Tuning, result_path, write_record
from benchmark.studies import (
    ERROR,
    RETRY_OF,
    best_params,
    finished,
    finished_trials,
    next_interrupted,
    next_trial_sampler,
    open_study,
    run_trials,
    storage_for,
    suggest,
)
from benchmark.study_archive import archive_path, distribution, export_study, rebuild, restore_study
from benchmark.suite import ParamRange, Suite, TuningConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": ParamRange(low=1e-4, high=1e-2, log=True), "dim": ParamRange(choices=[8, 16]),
         "blocks": ParamRange(low=1, high=3)}


def objective(trial: optuna.Trial) -> float:
    values = suggest(trial, SPACE)
    trial.set_user_attr("history", [{"epoch": 0, "val_ndcg@10": values["lr"]}])
    trial.report(values["lr"], 0)
    if values["blocks"] == 1:
        raise optuna.TrialPruned()
    return values["lr"] * values["dim"]


def summary(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.value, t.params, t.distributions, t.intermediate_values, t.user_attrs)
            for t in study.trials]


def test_a_restored_study_has_the_same_trials_and_continues(tmp_path):
    first = optuna.create_study(study_name="s/d/q/m@1", storage=storage_for(f"sqlite:///{tmp_path / 'a.db'}"),
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    run_trials(first, objective, 6)
    assert {t.state for t in first.trials} == {TrialState.COMPLETE, TrialState.PRUNED}
    export_study(first, tmp_path / "archive")
    storage = storage_for(f"sqlite:///{tmp_path / 'b.db'}")
    assert restore_study(tmp_path / "archive", "s/d/q/m@1", storage)
    assert not restore_study(tmp_path / "archive", "s/d/q/m@1", storage)  # only into a storage that lacks it
    second = optuna.load_study(study_name="s/d/q/m@1", storage=storage)
    assert summary(second) == summary(first)
    assert best_params(second)[0] == best_params(first)[0]
    run_trials(second, objective, 8)
    assert finished_trials(second) == 8 and summary(second)[:6] == summary(first)


def test_a_study_resumed_in_a_new_process_proposes_what_an_uninterrupted_one_would(tmp_path):
    """Each trial's sampler is seeded from the study's trial count: a study stopped after 3 trials and
    reopened (a new process) goes on with the points an uninterrupted study tried, not its first ones
    again."""
    tuning = TuningConfig(trials=7, startup_trials=2)

    def tuned(name: str, stops: list[int]) -> list[dict]:
        for budget in stops:  # each budget: a new process opening the study
            study = open_study(name, f"sqlite:///{tmp_path / 'studies.db'}", tuning)
            run_trials(study, objective, budget, sampler=lambda n: next_trial_sampler(tuning, 0, n))
        return [t.params for t in study.trials]

    uninterrupted, resumed = tuned("once", [7]), tuned("resumed", [3, 5, 7])
    assert resumed == uninterrupted
    assert len({tuple(sorted(p.items())) for p in resumed}) == 7


def test_an_interrupted_trial_is_redone_at_its_point_and_shifts_no_later_one(tmp_path):
    """A trial killed mid-way (here: interrupted like Ctrl-C, so it fails without an error) is redone by
    the next process at the same point before anything new is sampled; the finished trials are those of
    an uninterrupted study. A trial that failed with an error is not retried."""
    tuning = TuningConfig(trials=6, startup_trials=2)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"

    def sampler(finished_so_far: int) -> optuna.samplers.BaseSampler:
        return next_trial_sampler(tuning, 0, finished_so_far)

    uninterrupted = open_study("once", storage, tuning)
    run_trials(uninterrupted, objective, 6, sampler=sampler)
    calls = 0

    def killed_in_the_fourth(trial: optuna.Trial) -> float:
        nonlocal calls
        calls += 1
        if calls == 4:
            suggest(trial, SPACE)
            raise KeyboardInterrupt
        return objective(trial)

    with pytest.raises(KeyboardInterrupt):
        run_trials(open_study("interrupted", storage, tuning), killed_in_the_fourth, 6, sampler=sampler)
    resumed = open_study("interrupted", storage, tuning)
    run_trials(resumed, objective, 6, sampler=sampler)
    killed, retry = resumed.trials[3], resumed.trials[4]
    assert killed.state == TrialState.FAIL and retry.user_attrs[RETRY_OF] == 3 and retry.params == killed.params
    assert [t.params for t in resumed.trials if finished(t)] == [t.params for t in uninterrupted.trials]
    errored = optuna.trial.create_trial(state=TrialState.FAIL, params=killed.params, distributions=killed.distributions,
                                        user_attrs={ERROR: "ValueError()"})
    assert next_interrupted([errored]) is None and next_interrupted([killed]) is killed


def test_an_interrupted_trial_already_sampled_again_is_not_retried(tmp_path):
    """A study resumed before a retry was queued samples the interrupted point again (the sampler's seed
    depends on the finished trials only); that later trial redoes it, so no second retry repeats the
    point. Of two interrupted trials at one point, the later one is still retried."""
    study = optuna.create_study(study_name="resampled", storage=storage_for(f"sqlite:///{tmp_path / 'a.db'}"),
                                direction="maximize")
    point = {"lr": 1e-3, "dim": 8, "blocks": 2}
    distributions = {name: distribution(spec) for name, spec in SPACE.items()}
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params=point, distributions=distributions))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params=point, distributions=distributions))
    assert next_interrupted(study.trials) == study.trials[1]
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.07, params=point,
                                              distributions=distributions))
    assert next_interrupted(study.trials) is None
    run_trials(study, objective, 2, sampler=lambda done: next_trial_sampler(TuningConfig(startup_trials=2), 0, done))
    assert [t.params == point for t in study.trials] == [True, True, True, False]


def test_a_trial_missing_from_the_file_keeps_the_numbering(tmp_path):
    study = optuna.create_study(study_name="gap", storage=storage_for(f"sqlite:///{tmp_path / 'a.db'}"),
                                direction="maximize")
    run_trials(study, objective, 3)
    export_study(study, tmp_path / "archive")
    path = archive_path(tmp_path / "archive", "gap")
    saved = json.loads(path.read_text())
    saved["trials"] = [t for t in saved["trials"] if t["number"] != 1]  # was still running when written
    path.write_text(json.dumps(saved))
    storage = storage_for(f"sqlite:///{tmp_path / 'b.db'}")
    restore_study(tmp_path / "archive", "gap", storage)
    restored = optuna.load_study(study_name="gap", storage=storage).trials
    assert [t.number for t in restored] == [0, 1, 2]
    assert restored[1].state == TrialState.FAIL and restored[1].user_attrs == {"missing_from_archive": True}


@pytest.mark.parametrize("name", SPACE)
def test_the_archived_distribution_is_the_one_suggest_samples_from(name):
    study = optuna.create_study()
    trial = study.ask()
    suggest(trial, {name: SPACE[name]})
    assert trial.distributions[name] == distribution(SPACE[name])


def test_a_study_known_only_from_records_keeps_its_best_trial_and_its_count(tmp_path):
    suite = Suite.model_validate({"name": "lost", "datasets": [{"name": "ml-100k"}], "models": [
        {"name": "sasrec", "search": {"lr": {"low": 0.0001, "high": 0.01, "log": True}}}]})
    study = "lost/ml-100k/q0.9-first-by_time/sasrec@0.2.0"
    spec = RunSpec("lost", "ml-100k", "f", {}, {}, "sasrec", "sasrec", {"lr": 0.003, "dim": 64}, 0)
    record = RunRecord(spec, {}, {"ndcg@10": 0.1}, {}, 1.0, 1.0, "x.csv.gz",
                       tuning=Tuning(study, best_trial=2, best_value=0.25, trials=5))
    write_record(result_path(tmp_path / "runs", spec), record)
    assert len(rebuild(suite, tmp_path / "runs", tmp_path / "archive")) == 1
    assert rebuild(suite, tmp_path / "runs", tmp_path / "archive") == []  # an existing file is kept
    storage = storage_for(f"sqlite:///{tmp_path / 'c.db'}")
    restore_study(tmp_path / "archive", study, storage)
    restored = optuna.load_study(study_name=study, storage=storage)
    params, best = best_params(restored)
    assert params == {"lr": 0.003} and best.number == 2 and best.value == 0.25
    assert finished_trials(restored) == 5
    run_trials(restored, lambda trial: pytest.fail("a full study must not be tuned again"), 5)
    # exported again (as after the next trial on that machine), the file is unchanged: no invented times
    export_study(restored, tmp_path / "again")
    assert archive_path(tmp_path / "again", study).read_text() == archive_path(tmp_path / "archive", study).read_text()
