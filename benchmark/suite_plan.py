"""What a suite asks for, computed once: its selected datasets and splits, the Optuna studies to fill and
the final runs to train, each with its parameters and run key. Running (`suite_executor.py`), tuning
workers (`benchmark.tune`), ablations and dry runs all walk the same work list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from benchmark import paths
from benchmark.data.dataset import Interactions, load_dataset
from benchmark.errors import DataError
from benchmark.records import RunSpec, Tuning, result_path
from benchmark.registry import MODELS, key_identity
from benchmark.split import Split, SplitConfig
from benchmark.studies import (
    best_params,
    default_storage,
    finished_trials,
    load_study,
    mean_trial_seconds,
    next_interrupted,
    storage_for,
    study_name,
    trial_checkpoint,
)
from benchmark.study_archive import archive_dir, restore_study
from benchmark.suite import DatasetEntry, ModelEntry, Suite
from benchmark.trainer import checkpoint_progress


def parse_only(text: str | None) -> dict[str, set[str]]:
    """'dataset=ml-100k,model=mostpop' -> {'dataset': {'ml-100k'}, 'model': {'mostpop'}}."""
    selected: dict[str, set[str]] = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in ("dataset", "model"):
            raise DataError(f"--only: expected dataset=NAME or model=NAME, got {part!r}")
        selected.setdefault(key, set()).add(value)
    return selected


@dataclass(frozen=True)
class RunOptions:
    """Where data, caches, records, studies and tracking live, and what to run."""

    data_dir: str | None = None
    cache_dir: str | None = None
    output: Path | None = None
    only: dict[str, set[str]] = field(default_factory=dict)
    tracking_uri: str | None = None
    storage: str | None = None
    worker: int = 0
    queue: bool = False  # share final runs with other workers through the Optuna storage (run_queue.py)
    device: str = "cpu"  # where neural models train and score (resolved: see trainer.resolve_device)
    progress: bool = True
    budget: float | None = None  # seconds: start no final run or study that its estimate says would overrun it

    @property
    def cache_path(self) -> Path | None:
        """The cache folder as given (None: the default one)."""
        return Path(self.cache_dir) if self.cache_dir else None


@dataclass(frozen=True)
class Stage:
    """One dataset under one split."""

    dataset: DatasetEntry
    log: Interactions
    config: SplitConfig
    split: Split


@dataclass(frozen=True)
class StudyWork:
    """An entry's Optuna study on one stage."""

    entry: ModelEntry
    name: str


@dataclass(frozen=True)
class FinalWork:
    """One final run to train: the entry, its seed, and (once its tuning has finished) its identity."""

    entry: ModelEntry
    seed: int
    spec: RunSpec | None  # None while a study it depends on has no complete trial
    tuning: Tuning | None


@dataclass(frozen=True)
class StageWork:
    """Everything a stage asks for, in order: the studies (a source before the entries that build on it),
    then the final runs."""

    stage: Stage
    studies: list[StudyWork]
    finals: list[FinalWork]


class NotTuned(ValueError):
    """A study whose best parameters are needed has no complete trial yet."""


class SuitePlan:
    """The selected part of a suite and the parameters of each of its entries."""

    def __init__(self, suite: Suite, options: RunOptions):
        self.suite, self.options = suite, options
        known = {"dataset": sorted(d.label for d in suite.datasets),
                 "model": sorted({m.display for m in suite.models} | {m.name for m in suite.models})}
        for key, values in options.only.items():
            unknown = sorted(values - set(known[key]))
            if unknown:
                raise DataError(f"--only {key}={','.join(unknown)}: not in suite {suite.name} "
                                f"(its {key}s: {', '.join(known[key])})")
        self.output = options.output or paths.records_dir(suite.name, options.cache_dir)
        self.storage = options.storage or default_storage(options.cache_dir)
        self.archive = archive_dir(suite.name, options.cache_dir)  # the studies' committed copies

    # -- selection -----------------------------------------------------------------------------------

    def datasets(self) -> list[DatasetEntry]:
        """The selected datasets."""
        wanted = self.options.only.get("dataset")
        return [d for d in self.suite.datasets if wanted is None or d.label in wanted]

    def finals(self, dataset: str) -> list[ModelEntry]:
        """Entries whose final runs are selected on `dataset`: `model=X` selects the entry labelled X
        if there is one (the method `sasrec-kd`, not its controls), else every entry of registered
        model X."""
        wanted = self.options.only.get("model")
        by_name = (wanted or set()) - {m.display for m in self.suite.models}
        return [m for m in self.suite.models if m.applies_to(dataset)
                and (wanted is None or m.display in wanted or m.name in by_name)]

    def tuned(self, dataset: str) -> list[ModelEntry]:
        """Entries that need a study on `dataset`: selected tuned entries and tuned entries they start
        from, in suite order (a source is tuned before the entries that build on it)."""
        needed = set().union(*(self.lineage(entry) for entry in self.finals(dataset)))
        return [m for m in self.suite.models if m.display in needed and m.search]

    def lineage(self, entry: ModelEntry) -> set[str]:
        """The labels of the entry and of every entry it takes parameters from."""
        labels = {entry.display}
        while entry.params_from is not None:
            entry = self.suite.model(entry.params_from)
            labels.add(entry.display)
        return labels

    def final_count(self) -> int:
        """How many final runs and trials the selection holds (the size of a progress bar)."""
        per_stage = {d.label: len(self.finals(d.label)) * len(self.suite.seeds)
                     + len(self.tuned(d.label)) * self.suite.tuning.trials for d in self.datasets()}
        return sum(per_stage[d.label] * len(self.suite.splits_of(d)) for d in self.datasets())

    # -- the work list -------------------------------------------------------------------------------

    def stages(self) -> Iterator[Stage]:
        """Each selected dataset under each split (loaded lazily, one at a time)."""
        for entry in self.datasets():
            log = load_dataset(entry.source, data_dir=self.options.data_dir, cache_dir=self.options.cache_dir,
                               preprocessing=entry.preprocessing)
            for config in self.suite.splits_of(entry):
                yield Stage(entry, log, config, config.apply(log))

    def work(self, stage: Stage) -> StageWork:
        """The stage's studies and final runs; final runs whose tuning has not finished have no spec yet
        (call again after tuning)."""
        dataset = stage.dataset.label
        finals = []
        for entry in self.finals(dataset):
            try:
                params, tuning = self.final_params(stage, entry)
            except NotTuned:
                finals += [FinalWork(entry, seed, None, None) for seed in self.suite.seeds]
                continue
            finals += [FinalWork(entry, seed, self.run_spec(stage, entry, params, seed), tuning)
                       for seed in self.suite.seeds]
        return StageWork(stage, self.studies(stage), finals)

    def studies(self, stage: Stage) -> list[StudyWork]:
        """The stage's studies, a source before the entries that build on it (no study is read)."""
        return [StudyWork(entry, self.study_of(stage, entry)) for entry in self.tuned(stage.dataset.label)]

    def record_path(self, spec: RunSpec) -> Path:
        """Where the run's record is (or will be) written."""
        return result_path(self.output, spec)

    def checkpoint_path(self, spec: RunSpec) -> Path:
        """Where the run's training checkpoint is kept while it trains or is paused."""
        return self.record_path(spec).with_suffix(".ckpt")

    # -- parameters ----------------------------------------------------------------------------------

    def stage_name(self, stage: Stage) -> str:
        """The stage's identity: suite, dataset and split."""
        return f"{self.suite.name}/{stage.dataset.label}/{'-'.join(stage.config.label_parts())}"

    def study_of(self, stage: Stage, entry: ModelEntry) -> str:
        """The name of the entry's Optuna study on this dataset and split."""
        return study_name(self.suite.name, stage.dataset.label, stage.config, entry.display)

    def fixed_params(self, entry: ModelEntry) -> dict[str, Any]:
        """The entry's parameters without any tuned value: its sources' fixed parameters that it accepts,
        then its own (what profile generation can know before tuning)."""
        if entry.params_from is None:
            return dict(entry.params)
        accepted = MODELS[entry.name].accepted_params
        inherited = self.fixed_params(self.suite.model(entry.params_from))
        return {k: v for k, v in inherited.items() if k in accepted} | entry.params

    def base_params(self, stage: Stage, entry: ModelEntry) -> tuple[dict[str, Any], Tuning | None]:
        """The entry's parameters before its own tuning: its `params_from` source's final parameters
        that it accepts, then its own fixed ones; with the tuning record they inherit."""
        if entry.params_from is None:
            return dict(entry.params), None
        params, tuning = self.final_params(stage, self.suite.model(entry.params_from))
        accepted = MODELS[entry.name].accepted_params
        return {k: v for k, v in params.items() if k in accepted} | entry.params, tuning

    def final_params(self, stage: Stage, entry: ModelEntry) -> tuple[dict[str, Any], Tuning | None]:
        """The entry's final parameters (base, then its best trial's) and the study they come from;
        `NotTuned` when a study they need has no complete trial."""
        params, tuning = self.base_params(stage, entry)
        if not entry.search:
            return params, tuning
        name = self.study_of(stage, entry)
        try:
            study = self.study(name)
            tuned, best = best_params(study)
        except (KeyError, ValueError):
            raise NotTuned(f"study {name} has no complete trial yet: run its tuning first") from None
        return params | tuned, Tuning(name, best.number, float(best.value), finished_trials(study))

    def run_spec(self, stage: Stage, entry: ModelEntry, params: dict[str, Any], seed: int) -> RunSpec:
        """The run's full identity."""
        spec = MODELS[entry.name]
        settings = spec.profile_settings(params)
        name, key_params = key_identity(entry.name, spec.resolve(params))
        return RunSpec(self.suite.name, stage.dataset.label, stage.log.fingerprint, stage.config.as_dict(),
                       asdict(self.suite.evaluation), name, entry.display, key_params, seed,
                       settings.identity if settings is not None else None)

    def study(self, name: str) -> optuna.Study:
        """The study `name` from the storage, rebuilt there first from its archive file if the storage
        lacks it (KeyError when neither has it)."""
        restore_study(self.archive, name, storage_for(self.storage))
        return load_study(name, self.storage)

    def finished_trials(self, study: str) -> int:
        """Complete + pruned trials of a study (0 before it exists)."""
        try:
            return finished_trials(self.study(study))
        except KeyError:
            return 0

    def paused_trial(self, stage: Stage, work: StudyWork) -> tuple[int, float] | None:
        """Epochs done and seconds spent by the study's interrupted trial whose checkpoint this machine
        holds (None if there is none): the next trial continues it (see `studies.next_interrupted`)."""
        try:
            interrupted = next_interrupted(self.study(work.name).get_trials(deepcopy=False))
        except KeyError:
            return None
        if interrupted is None:
            return None
        base, _ = self.base_params(stage, work.entry)
        return checkpoint_progress(trial_checkpoint(self.options.cache_path, work.name, base | interrupted.params))

    def trial_seconds(self, study: str, *, complete_only: bool = False) -> float | None:
        """The mean time of a study's finished (or only its complete) trials (None before one has)."""
        try:
            return mean_trial_seconds(self.study(study), complete_only=complete_only)
        except KeyError:
            return None
