"""How long a suite entry's final run or trial is expected to take on a dataset, from the work already
recorded there: what `--budget` decides with and `--dry-run` reports."""

from __future__ import annotations

from benchmark.records import read_records
from benchmark.suite import ModelEntry
from benchmark.suite_plan import Stage, SuitePlan


class Estimates:
    """Expected seconds of an entry's work on a dataset. Each comes from the entry's own recorded work
    when there is some, else from the entry it takes its parameters from: a distilled model's first
    trial is expected to take about as long as its backbone's trials, a control's runs as long as the
    method's. None when neither has anything recorded."""

    def __init__(self, plan: SuitePlan):
        self.plan = plan
        self._run_seconds: dict[str, dict[str, list[float]]] = {}  # dataset -> label -> recorded run times

    def recorded(self, dataset: str) -> None:
        """A final run was recorded on `dataset`: estimates read the records again."""
        self._run_seconds.pop(dataset, None)

    def final_run(self, stage: Stage, entry: ModelEntry) -> float | None:
        """One final run: the mean of the entry's recorded runs on the dataset, else of its study's complete
        trials (trained to their early stop, as a final run is), else its source's estimate."""
        seconds = self._mean_run_seconds(stage.dataset.label, entry.display)
        if seconds is None and entry.search:
            seconds = self.plan.trial_seconds(self.plan.study_of(stage, entry), complete_only=True)
        if seconds is None and entry.params_from is not None:
            return self.final_run(stage, self.plan.suite.model(entry.params_from))
        return seconds

    def final_run_left(self, stage: Stage, entry: ModelEntry, progress: tuple[int, float] | None) -> float | None:
        """What is left of one final run: its estimate less what a paused run's checkpoint holds
        (`progress`: epochs done, seconds spent; see `_less_progress`)."""
        return _less_progress(self.final_run(stage, entry), progress)

    def trial(self, stage: Stage, entry: ModelEntry) -> float | None:
        """The entry's next trial: the mean of its study's finished trials (pruned ones included), else of
        its recorded final runs, else its source's trial estimate."""
        seconds = self.plan.trial_seconds(self.plan.study_of(stage, entry))
        if seconds is None:
            seconds = self._mean_run_seconds(stage.dataset.label, entry.display)
        if seconds is None and entry.params_from is not None:
            return self.trial(stage, self.plan.suite.model(entry.params_from))
        return seconds

    def trials_left(self, stage: Stage, entry: ModelEntry, trials: int, paused: tuple[int, float] | None) -> float | None:
        """The entry's next `trials` trials, the first of which continues a paused trial when `paused`
        (its checkpoint's epochs done and seconds spent) counts only what is left of it, as for a final run."""
        if trials == 0:
            return 0.0
        estimate = self.trial(stage, entry)
        if estimate is None:
            return None
        return _less_progress(estimate, paused) + estimate * (trials - 1)

    def _mean_run_seconds(self, dataset: str, label: str) -> float | None:
        if dataset not in self._run_seconds:
            folder = self.plan.output / dataset
            by_label: dict[str, list[float]] = {}
            for _, record in read_records(folder) if folder.is_dir() else []:
                by_label.setdefault(record.label, []).append(record.seconds)
            self._run_seconds[dataset] = by_label
        times = self._run_seconds[dataset].get(label, [])
        return sum(times) / len(times) if times else None


def _less_progress(estimate: float | None, progress: tuple[int, float] | None) -> float | None:
    """What is left of paused work: the estimate less the training its checkpoint holds (`progress`:
    epochs done, seconds spent), but at least one more of its epochs (work longer than the mean still
    has to finish)."""
    if estimate is None or progress is None:
        return estimate
    epochs, seconds = progress
    return max(estimate - seconds, seconds / epochs)
