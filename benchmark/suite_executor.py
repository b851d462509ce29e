"""Doing a suite's work list (`suite_plan.py`), per stage in three phases: generate the LLM profiles its
distilling entries need, fill its Optuna studies, train and record its final runs; within a time budget.

A final run is recorded under the output folder by a hash of its resolved configuration (+ data
checksum, profile identity, code version) and skipped on rerun; runs and trials are logged to MLflow
once. Killing the process at any point and running again completes the suite without duplicates.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
import torch
from filelock import FileLock, Timeout
from optuna.trial import TrialState
from tqdm.auto import tqdm

from benchmark.estimates import Estimates
from benchmark.methods.base import FitContext
from benchmark.metrics import evaluate
from benchmark.precision import bf16_matmul
from benchmark.profiles.generate import NOT_GENERATED
from benchmark.profiles.pipeline import llm_profiles, profile_embeddings
from benchmark.profiles.settings import ProfileResources, ProfileSettings
from benchmark.records import (
    RunRecord,
    RunSpec,
    Tuning,
    read_per_user,
    read_record,
    split_tag,
    write_record,
)
from benchmark.registry import MODELS, canonical_name, get_model
from benchmark.run_queue import RunQueue
from benchmark.stores import NO_TRACKING
from benchmark.studies import (
    ERROR,
    PAUSED,
    RESUMED,
    PruningCallback,
    finished,
    next_trial_sampler,
    open_study,
    run_trials,
    storage_for,
    suggest,
    trial_checkpoint,
)
from benchmark.study_archive import export_study, restore_study
from benchmark.suite_plan import FinalWork, Stage, StudyWork, SuitePlan
from benchmark.trainer import TrainingPaused, checkpoint_progress, remove_checkpoint

if TYPE_CHECKING:
    from benchmark.tracking import Tracker


optuna.logging.set_verbosity(optuna.logging.WARNING)


class Budget:
    """A wall-time budget: work is started only if its estimate (`Estimates`) says it ends in time; work
    without an estimate is started while time is left."""

    def __init__(self, seconds: float | None):
        self.seconds, self.started = seconds, time.monotonic()

    def fits(self, seconds: float | None) -> bool:
        """Whether work estimated at `seconds` ends within the budget."""
        if self.seconds is None:
            return True
        elapsed = time.monotonic() - self.started
        return elapsed < self.seconds if seconds is None else elapsed + seconds <= self.seconds

    def spent(self) -> bool:
        """Whether the budget's time is up (running training then pauses at its next epoch)."""
        return not self.fits(None)


class SuiteExecutor:
    """Runs the selected part of a suite; see the module docstring."""

    def __init__(self, plan: SuitePlan):
        self.plan, self.suite, self.options = plan, plan.suite, plan.options
        self.budget, self.estimates = Budget(self.options.budget), Estimates(plan)
        self._tracker: Tracker | None = None
        self.bar: tqdm | None = None
        self.records: list[tuple[RunRecord, pd.DataFrame]] = []  # final runs of the last `run`, with per-user metrics
        self.left: list[dict[str, Any]] = []  # what the budget left undone: work, dataset, model, seed, estimate
        self.paused: dict[str, int] = {}  # study name -> epochs done by its trial the budget paused

    @property
    def tracker(self) -> Tracker | None:
        """The MLflow tracker (opened on first use); None under `--tracking-uri none`, where MLflow is not
        even imported (a machine without it, e.g. a lent GPU, still runs and records the suite)."""
        if self._tracker is None and self.options.tracking_uri != NO_TRACKING:
            from benchmark.tracking import Tracker, default_tracking_uri

            uri = self.options.tracking_uri or default_tracking_uri(self.options.cache_dir)
            self._tracker = Tracker(uri, self.suite.name, self.suite.description or None)
        return self._tracker

    # -- the phases ----------------------------------------------------------------------------------

    def run(self) -> list[RunRecord]:
        """All phases for every selected stage; the records of its final runs (also in `records`)."""
        self.bar = tqdm(total=self.plan.final_count(), desc=f"suite {self.suite.name}", unit="run",
                        disable=not self.options.progress)
        recorded = []
        with self.bar:  # closed (its line ended) even when an error stops the suite
            for stage in self.plan.stages():
                self._status(f"{stage.dataset.label}: profiles")
                waiting = self.ensure_profiles(stage)
                for study in self.plan.studies(stage):  # a source before what builds on it
                    if not self.fill(stage, study, waiting):
                        waiting.setdefault(study.entry.display, "its tuning did not fit the budget")
                finals = self.plan.work(stage).finals
                recorded += (self.shared(stage, finals, waiting) if self.options.queue
                             else self.each(stage, finals, waiting))
        return recorded

    def each(self, stage: Stage, finals: list[FinalWork], waiting: dict[str, str]) -> list[RunRecord]:
        """The stage's final runs, one after the other."""
        records = []
        for final in finals:
            if (record := self.final(stage, final, waiting)) is not None:
                records.append(record)
            self._advance()
        return records

    def shared(self, stage: Stage, finals: list[FinalWork], waiting: dict[str, str]) -> list[RunRecord]:
        """The stage's final runs shared with other workers through the storage (`run_queue.py`): the
        recorded ones, then the queued ones this worker claims."""
        queue = RunQueue(self.plan.storage, self.plan.stage_name(stage), self.options.worker)
        by_key = {final.spec.key: final for final in finals if final.spec is not None}
        queue.enqueue([key for key, final in by_key.items() if not self.plan.record_path(final.spec).is_file()])
        records = self.each(stage, [f for f in finals if f.spec is None or self.plan.record_path(f.spec).is_file()],
                            waiting)
        while (claimed := queue.claim()) is not None:
            trial, key = claimed
            record = None
            if key in by_key:  # another worker's selection (--only) may queue runs this one does not plan
                with queue.heartbeat(trial):
                    record = self.final(stage, by_key[key], waiting)
            queue.finish(trial, record is not None)
            if record is not None:
                records.append(record)
            self._advance()
        return records

    def tune_all(self) -> list[tuple[Stage, StudyWork]]:
        """Only the tuning phase (what a `benchmark.tune` worker does); the studies it filled."""
        filled = []
        for stage in self.plan.stages():
            studies = self.plan.studies(stage)
            if studies:
                self.ensure_profiles(stage)
            for study in studies:
                self.tune(stage, study)
                filled.append((stage, study))
        return filled

    def ensure_profiles(self, stage: Stage) -> dict[str, str]:
        """Generate (while the time budget allows) and embed the LLM profiles that this stage's distilling
        entries need (those fixed before tuning; a tuned profile setting is generated by its fit); the
        entries left waiting for profiles, with why (what is left is noted in `left`)."""
        needing: dict[ProfileSettings, list[str]] = {}
        for entry in self.plan.finals(stage.dataset.label):
            if (settings := MODELS[entry.name].profile_settings(self.plan.fixed_params(entry))) is not None:
                needing.setdefault(settings, []).append(entry.display)
        waiting: dict[str, str] = {}
        for profile_settings, labels in needing.items():
            with ProfileResources(profile_settings, self.options.cache_path) as resources:
                profiles, summary = llm_profiles(stage.split, resources, progress=self.options.progress,
                                                 may_start=self.budget.fits)
                if missing := sum(reason == NOT_GENERATED for reason in profiles.missing.values()):
                    waiting |= dict.fromkeys(labels, f"{missing} of its LLM profiles are not generated yet")
                    self._leave("profiles", stage.dataset.label, ", ".join(labels), "-",
                                summary.seconds / summary.generated * missing if summary.generated else None,
                                f"{missing} profiles would overrun the budget")
                else:
                    profile_embeddings(stage.split, profiles, resources, progress=self.options.progress)
        return waiting

    def fill(self, stage: Stage, study: StudyWork, waiting: dict[str, str]) -> bool:
        """Fill the study to its trial budget, starting a trial only while the time budget allows it and
        never on top of a `waiting` source's provisional parameters or missing profiles; whether the study
        is full (if not, what is left is noted in `left`)."""
        done = min(self.plan.finished_trials(study.name), self.suite.tuning.trials)
        if self.bar is not None:
            self.bar.update(done)
        dataset, label = stage.dataset.label, study.entry.display
        if blocked := sorted(self.plan.lineage(study.entry) & waiting.keys()):
            self._leave("study", dataset, label, "-", None, f"waits for {', '.join(blocked)} ({waiting[blocked[0]]})")
            return False

        def may_start(_: optuna.Study) -> bool:
            return self.budget.fits(self.estimates.trials_left(stage, study.entry, 1, self.plan.paused_trial(stage, study)))

        if self.tune(stage, study, may_start):
            return True
        left = self.suite.tuning.trials - self.plan.finished_trials(study.name)
        estimate = self.estimates.trials_left(stage, study.entry, left, self.plan.paused_trial(stage, study))
        why = f"{left} of {self.suite.tuning.trials} trials would overrun the budget"
        if study.name in self.paused:
            why = (f"{left} of {self.suite.tuning.trials} trials left, one paused after {self.paused[study.name]} "
                   "epochs (continues from its checkpoint)")
        self._leave("study", dataset, label, "-", estimate, why)
        return False

    def tune(self, stage: Stage, work: StudyWork, may_start: Callable[[optuna.Study], bool] = lambda _: True) -> bool:
        """Fill the entry's study up to the suite's trial budget, starting each trial only if `may_start`
        allows it; whether the study is full."""
        entry = work.entry
        restore_study(self.plan.archive, work.name, storage_for(self.plan.storage))
        study = open_study(work.name, self.plan.storage, self.suite.tuning, self.options.worker)
        base, _ = self.plan.base_params(stage, entry)
        tags = self._study_tags(stage, entry.name)

        def objective(trial: optuna.Trial) -> float:
            trial.set_user_attr("worker", self.options.worker)
            params = base | suggest(trial, entry.search)
            pruning = PruningCallback(trial, first_epoch=MODELS[entry.name].resolve(params).get("distil_epochs", 0))
            self._status(f"tune {entry.display} trial {trial.number}")
            checkpoint = trial_checkpoint(self.options.cache_path, work.name, params)
            context = FitContext(seed=self.suite.tuning.seed, evaluation=self.suite.evaluation, checkpoint=checkpoint,
                                 progress=self.options.progress, cache_dir=self.options.cache_path, callbacks=(pruning,),
                                 device=self.options.device, pause_when=self.budget.spent)
            if checkpoint.is_file():  # its wall time will cover only the epochs after the resume
                trial.set_user_attr(RESUMED, True)
            try:
                info = get_model(entry.name).fit(stage.split, params, context).info
            except TrainingPaused as paused:  # failed now, redone from its checkpoint by a later call (studies.py)
                trial.set_user_attr(PAUSED, paused.epochs_done)
                self.paused[work.name] = paused.epochs_done
                raise
            except Exception as error:
                remove_checkpoint(checkpoint)
                if not isinstance(error, optuna.TrialPruned):
                    trial.set_user_attr(ERROR, repr(error)[:500])
                raise
            remove_checkpoint(checkpoint)
            trial.set_user_attr("history", info["history"])  # every epoch, those before a resume included
            return float(info["best_val"])

        def logged(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            export_study(study, self.plan.archive)
            if self.tracker is not None:
                self.tracker.log_trial(work.name, trial, tags)
            if self.bar is not None and finished(trial):
                self.bar.update()

        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if self.tracker is not None and trial.user_attrs.get("worker") == self.options.worker:
                self.tracker.log_trial(work.name, trial, tags)  # finished before a kill, maybe unlogged
        full = run_trials(study, objective, self.suite.tuning.trials, callbacks=[logged], may_start=may_start,
                          sampler=partial(next_trial_sampler, self.suite.tuning, self.options.worker),
                          catch=(TrainingPaused,))
        export_study(study, self.plan.archive)
        return full

    def final(self, stage: Stage, work: FinalWork, waiting: dict[str, str]) -> RunRecord | None:
        """The final run's record: read if recorded, else trained if its tuning finished and it fits the
        budget (None, noted in `left`, when it does not)."""
        dataset, label = stage.dataset.label, work.entry.display
        blocked = sorted(self.plan.lineage(work.entry) & waiting.keys())
        if work.spec is None or blocked:
            why = f"{blocked[0]}: {waiting[blocked[0]]}" if blocked else "a study it needs has no complete trial"
            self._leave("final run", dataset, label, work.seed, None, why)
            return None
        path = self.plan.record_path(work.spec)
        self._status(f"{dataset} {label} seed {work.seed}")
        with self._run_lock(path):  # another process on the same records trains it once, logs it once
            if path.is_file():
                record = read_record(path, cached=True)
            elif not self.budget.fits(estimate := self._final_run_left(stage, work)):
                self._leave("final run", dataset, label, work.seed, estimate, "would overrun the budget")
                return None
            else:
                try:
                    record = self.execute(stage, work.spec, work.tuning)
                except TrainingPaused as paused:
                    self._leave("final run", dataset, label, work.seed, self._final_run_left(stage, work),
                                f"paused after {paused.epochs_done} epochs, continues from its checkpoint")
                    return None
                self.estimates.recorded(dataset)
            per_user = read_per_user(path, record)
            if self.tracker is not None:
                self.tracker.log_final(record, per_user)
        self.records.append((record, per_user))
        return record

    @contextlib.contextmanager
    def _run_lock(self, record: Path) -> Iterator[None]:
        """Hold the final run's lock file (next to its record): a second process that reaches the same run
        waits here, then finds the record the first one wrote."""
        record.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(record.with_suffix(".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self._status(f"waiting: another process is training {record.stem}")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def execute(self, stage: Stage, spec: RunSpec, tuning: Tuning | None) -> RunRecord:
        """Fit, evaluate on test, and record one final run (the record file is written last)."""
        path = self.plan.record_path(spec)
        started = time.perf_counter()
        context = FitContext(seed=spec.seed, evaluation=self.suite.evaluation, checkpoint=self.plan.checkpoint_path(spec),
                             progress=self.options.progress, cache_dir=self.options.cache_path, device=self.options.device,
                             pause_when=self.budget.spent)
        name, implied = canonical_name(spec.model, spec.params)
        fitted = get_model(name).fit(stage.split, dict(spec.params) | implied, context)
        fit_seconds = time.perf_counter() - started
        result = evaluate(fitted.model, stage.log, stage.split.test, max_len=fitted.model.max_len,
                          config=self.suite.evaluation)
        per_user, extra = result.per_user, {}
        for extra_name, config in self.suite.extra_evaluations.items():
            other = evaluate(fitted.model, stage.log, stage.split.test, max_len=fitted.model.max_len, config=config)
            per_user = per_user.join(other.per_user.drop(columns="user_id").add_prefix(f"{extra_name}/"))
            extra[extra_name] = {"evaluation": asdict(config), "test": other.means}
        per_user_path = path.with_suffix(".per_user.csv.gz")
        per_user_path.parent.mkdir(parents=True, exist_ok=True)
        per_user.to_csv(per_user_path)
        record = RunRecord(spec, stage.split.report(), result.means, fitted.info, fit_seconds,
                           time.perf_counter() - started - fit_seconds, per_user_path.name, tuning, host(self.options.device), extra,
                           datetime.now(UTC).isoformat(timespec="seconds"))
        write_record(path, record)  # its presence marks the run as done
        remove_checkpoint(context.checkpoint)
        return record

    # -- helpers -------------------------------------------------------------------------------------

    def _final_run_left(self, stage: Stage, work: FinalWork) -> float | None:
        assert work.spec is not None
        return self.estimates.final_run_left(stage, work.entry, checkpoint_progress(self.plan.checkpoint_path(work.spec)))

    def _advance(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def _leave(self, work: str, dataset: str, model: str, seed: int | str, estimate_s: float | None, why: str) -> None:
        """Note work the budget (or what it waits for) left for a later call."""
        self.left.append({"work": work, "dataset": dataset, "model": model, "seed": seed, "estimate_s": estimate_s,
                          "why": why})

    def _status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def _study_tags(self, stage: Stage, model: str) -> dict[str, str]:
        """The tags of a study's trials (a final run's come from its record)."""
        return {"suite": self.suite.name, "dataset": stage.dataset.label, "model": model,
                "data_fingerprint": stage.log.fingerprint, "split": split_tag(stage.config.as_dict())}


def host(device: str) -> dict[str, Any]:
    """The machine a run ran on (reported with the results), with how it ran bf16 products on `device`."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "bf16_matmul": bf16_matmul(device)}
