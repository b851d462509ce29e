"""Optuna tuning: one study per (suite, dataset, split, model entry), shared by every worker.

A study lives in an Optuna storage: by default a local SQLite file (nothing to start); with a
PostgreSQL URL, `python -m benchmark.tune` workers on one or many machines fill the same study. The
budget counts trials of all workers: a worker starts a trial only while complete + pruned + running
trials are below it, and a trial that turns out to be beyond it (two workers asked at the same
moment) is failed at once and marked `over_budget`, so exactly `trials` trials complete or prune.

An interrupted trial is redone at the same point: a killed worker's trial stops sending heartbeats
and is failed as stale, a trial paused by a time budget fails marked `paused`; before sampling
anything new, a worker enqueues such a trial's parameters once (the retry is marked `retry_of`), and
the retry continues from the trial's checkpoint (`trial_checkpoint`) when this machine still has it.
Trials that failed with an error (marked `error`) are not retried.

Each trial's sampler is seeded from the tuning seed, the worker and the number of finished trials
(`next_trial_sampler`), so parallel workers do not propose the same points, and a study resumed in a
new process, or after an interrupted trial, goes on with the points an uninterrupted study would
have tried. Random sampling for the first `startup_trials` finished trials, TPE after; pruning uses
the per-epoch validation NDCG@10 reported from the trainer's epoch callback.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

import benchmark
from benchmark import paths
from benchmark.split import SplitConfig
from benchmark.study_archive import LOST
from benchmark.suite import ParamRange, TuningConfig

HEARTBEAT_SECONDS = 5
STALE_AFTER_SECONDS = 20
MONITOR = "val_ndcg@10"
RETRY_OF = "retry_of"  # user attribute of a trial redoing an interrupted one: that trial's number
PAUSED = "paused"  # user attribute of a trial a time budget paused: the epochs it had completed
ERROR = "error"  # user attribute of a trial whose objective raised: the error, so that it is not retried
RESUMED = "resumed"  # user attribute of a trial that continued an interrupted one's checkpoint


class OverBudget(Exception):
    """The study already had its budget of trials when this one was created."""


def study_name(suite: str, dataset: str, split: SplitConfig, label: str) -> str:
    """The study's name: suite, dataset, split, model entry and code version (trials of other code
    versions are not mixed in)."""
    return f"{suite}/{dataset}/{'-'.join(split.label_parts())}/{label}@{benchmark.__version__}"


def default_storage(cache_dir: str | Path | None = None) -> str:
    """The embedded storage: a SQLite file in the cache folder."""
    path = paths.cache_dir(cache_dir) / "optuna" / "studies.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(name: str, storage: str, tuning: TuningConfig, worker: int = 0) -> optuna.Study:
    """Create or load the study `name` in `storage` (maximising validation NDCG@10)."""
    pruner: optuna.pruners.BasePruner = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=tuning.startup_trials,
                                                      n_warmup_steps=tuning.warmup_epochs),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=max(tuning.warmup_epochs, 1)),
        "none": optuna.pruners.NopPruner,
    }[tuning.pruner]()
    return optuna.create_study(study_name=name, storage=storage_for(storage), direction="maximize",
                               load_if_exists=True, pruner=pruner, sampler=next_trial_sampler(tuning, worker, 0))


def next_trial_sampler(tuning: TuningConfig, worker: int, finished_so_far: int) -> optuna.samplers.TPESampler:
    """The sampler of a study's next trial: random for the first `startup_trials` finished trials, TPE
    after. Its seed depends on how many trials have finished, so a study resumed in a new process
    proposes what comes next instead of restarting one random sequence (which repeated the points of
    its first trials after every restart), and an interrupted trial shifts no later point."""
    seed = int(np.random.SeedSequence([tuning.seed, worker, finished_so_far]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tuning.startup_trials)


def load_study(name: str, storage: str) -> optuna.Study:
    """An existing study (KeyError when it does not exist yet)."""
    return optuna.load_study(study_name=name, storage=storage_for(storage))


@cache
def storage_for(url: str) -> optuna.storages.RDBStorage:
    """One storage connection per URL for this process, with heartbeats for stale-trial detection."""
    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats: stable since Optuna 2.9, still labelled experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=STALE_AFTER_SECONDS)
        except SQLAlchemyError:  # workers starting together on an empty database race to create the schema
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def suggest(trial: optuna.Trial, space: dict[str, ParamRange]) -> dict[str, Any]:
    """Sample one point of the search space."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.choices is not None:
            values[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.is_int:
            values[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=int(spec.step or 1))
        else:
            values[name] = trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log,
                                               step=spec.step)
    return values


class PruningCallback:
    """Trainer callback: reports validation NDCG@10 after every epoch from `first_epoch` on (the end of
    a distillation phase: a trial is not judged while the auxiliary loss holds the metric down) and
    stops a hopeless trial."""

    def __init__(self, trial: optuna.Trial, first_epoch: int = 0):
        self.trial = trial
        self.first_epoch = first_epoch
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Report the epoch; raises optuna.TrialPruned when the pruner says so."""
        self.history.append({"epoch": epoch, **metrics})
        self.trial.set_user_attr("history", self.history)
        if epoch < self.first_epoch:
            return
        self.trial.report(metrics[MONITOR], epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {MONITOR} {metrics[MONITOR]:.4f}")


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], budget: int, *,
               callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
               may_start: Callable[[optuna.Study], bool] = lambda _: True, poll_seconds: float = 2.0,
               sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None,
               catch: tuple[type[Exception], ...] = ()) -> bool:
    """Run trials until `budget` trials of the study (from any worker) are complete or pruned, starting
    each only if `may_start` allows it (a time budget), an interrupted trial's point before any new one,
    with `sampler(finished trials)` when given; whether the study reached its trial budget. A trial
    raising one of `catch` fails without stopping the loop (the next `may_start` decides)."""

    def guarded(trial: optuna.Trial) -> float:
        earlier = study.get_trials(deepcopy=False)
        if sum(t.number < trial.number and (finished(t) or t.state == TrialState.RUNNING) for t in earlier) >= budget:
            trial.set_user_attr("over_budget", True)
            raise OverBudget(f"study {study.study_name} already has {budget} trials")
        return objective(trial)

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        done = sum(map(finished, trials))
        if done >= budget:
            return True
        if done + sum(t.state == TrialState.RUNNING for t in trials) >= budget:  # others are finishing the budget
            time.sleep(poll_seconds)
            continue
        if not may_start(study):
            return False
        if (interrupted := next_interrupted(trials)) is not None:
            study.enqueue_trial(interrupted.params, user_attrs={RETRY_OF: interrupted.number})
        if sampler is not None:
            study.sampler = sampler(done)
        study.optimize(guarded, n_trials=1, callbacks=list(callbacks), catch=(OverBudget, *catch), gc_after_trial=False)


def next_interrupted(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The first trial that was killed or paused before it finished and is neither redone nor queued to
    be (None if there is none)."""
    if any(t.state == TrialState.WAITING for t in trials):
        return None  # an enqueued point goes first
    for trial in trials:
        if (trial.state == TrialState.FAIL and trial.params and not redone(trial, trials)
                and not any(trial.user_attrs.get(mark) for mark in ("over_budget", ERROR, LOST))):
            return trial
    return None


def redone(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> bool:
    """Whether a later trial redoes `trial`: its enqueued retry, or a later trial at the same point (a
    study resumed before a retry was queued samples an interrupted trial's point again, since the sampler's
    seed depends only on the trials finished so far)."""
    return any(later.number > trial.number and (later.user_attrs.get(RETRY_OF) == trial.number
                                                or later.params == trial.params) for later in trials)


def trial_checkpoint(cache_dir: str | Path | None, study: str, params: dict[str, Any]) -> Path:
    """Where a trial's training checkpoint lives: named by its study and point, so a retry of an
    interrupted trial (a new trial number, the same point) finds it."""
    point = json.dumps({"study": study, "params": params}, sort_keys=True, default=str)
    return paths.cache_dir(cache_dir) / "optuna" / "checkpoints" / f"{hashlib.sha256(point.encode()).hexdigest()[:20]}.ckpt"


def finished(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards the budget: complete, pruned, or finished but lost (see study_archive)."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or bool(trial.user_attrs.get(LOST))


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards the budget."""
    return sum(map(finished, study.get_trials(deepcopy=False)))


def mean_trial_seconds(study: optuna.Study, *, complete_only: bool = False) -> float | None:
    """The mean wall time of the study's complete and pruned trials (None before one has finished): what
    the next trial is expected to take, pruning included; `complete_only`: what a run trained to its
    early stop takes. A trial resumed from a checkpoint is left out (its time covers only part of it)."""
    states = (TrialState.COMPLETE,) if complete_only else (TrialState.COMPLETE, TrialState.PRUNED)
    times = [t.duration.total_seconds() for t in study.get_trials(deepcopy=False, states=states)
             if t.duration is not None and not t.user_attrs.get(RESUMED)]
    return sum(times) / len(times) if times else None


def best_params(study: optuna.Study) -> tuple[dict[str, Any], FrozenTrial]:
    """The best complete trial's parameters (the error names the study when none completed)."""
    try:
        best = study.best_trial
    except ValueError:
        raise ValueError(f"study {study.study_name}: no complete trial to take parameters from") from None
    return dict(best.params), best
