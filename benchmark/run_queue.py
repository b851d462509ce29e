"""Final runs shared among workers through an Optuna storage (the same one tuning workers share).

Each stage (dataset × split) of a suite has a queue: an Optuna study whose enqueued trials are the final
runs not yet recorded, one per run key (`run_key` user attribute). Optuna hands a waiting trial to exactly
one worker (its RDB storage changes a trial's state from WAITING to RUNNING atomically), so on a
PostgreSQL storage any number of workers on any number of machines drain the queue without home-made
locking. Two workers may enqueue the same run at the same moment; a claimed trial then runs only if no
lower-numbered trial of the same run key is waiting, running or complete (otherwise it is closed as a
`duplicate`), so every run is trained once. A worker that asks just after another took the last waiting
trial gets a fresh trial from Optuna, which it closes as failed with `empty_queue` set. A worker that
dies leaves its trial running until Optuna's heartbeat marks it failed; the next call enqueues that run
again.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

import benchmark
from benchmark.studies import HEARTBEAT_SECONDS, storage_for

KEY = "run_key"
PENDING = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)


class RunQueue:
    """The queue of one stage's final runs."""

    def __init__(self, storage: str, name: str, worker: int = 0):
        self.worker, self.storage = worker, storage_for(storage)
        self.study = optuna.create_study(study_name=f"{name}/final-runs@{benchmark.__version__}",
                                         storage=self.storage, direction="maximize", load_if_exists=True)

    def enqueue(self, keys: list[str]) -> None:
        """Queue the runs whose keys have no waiting, running or complete trial (a run whose worker died
        is failed first, so it is queued again)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        queued = {t.user_attrs.get(KEY) for t in self.study.get_trials(deepcopy=False, states=PENDING)}
        for key in keys:
            if key not in queued:
                self.study.enqueue_trial({}, user_attrs={KEY: key})

    def claim(self) -> tuple[optuna.Trial, str] | None:
        """The next run this worker owns (its trial and run key), or None when the queue is empty."""
        while self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial = self.study.ask()
            key = trial.user_attrs.get(KEY)
            if key is None:  # the queue emptied between the look and the ask: Optuna made a fresh trial
                trial.set_user_attr("empty_queue", True)
                self.study.tell(trial, state=TrialState.FAIL)
                return None
            if self._duplicate(trial.number, key):
                trial.set_user_attr("duplicate", True)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            trial.set_user_attr("worker", self.worker)
            return trial, key
        return None

    @contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Keep the claimed run's trial alive while the run trains (a dead worker's trial goes stale)."""
        stop = threading.Event()
        trial_id = trial._trial_id  # Optuna's heartbeat API takes the storage's trial id

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                self.storage.record_heartbeat(trial_id)

        self.storage.record_heartbeat(trial_id)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def finish(self, trial: optuna.Trial, recorded: bool) -> None:
        """Close a claimed run: complete when its record was written, failed (to be queued again) if not."""
        if recorded:
            self.study.tell(trial, 1.0)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def _duplicate(self, number: int, key: str) -> bool:
        return any(t.user_attrs.get(KEY) == key and (t.number < number or t.state == TrialState.COMPLETE)
                   for t in self.study.get_trials(deepcopy=False, states=PENDING) if t.number != number)
