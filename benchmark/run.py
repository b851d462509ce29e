"""`python -m benchmark.run --suite NAME`: run a whole suite, resumably.

For every dataset and split of the suite, in three phases:
1. profiles: every LLM profile a distilling model needs is generated through the profile cache and
   embedded (a rerun generates nothing);
2. tuning: one Optuna study per model entry with a `search` space is filled up to the suite's trial
   budget (`python -m benchmark.tune` workers may fill it too, on other machines);
3. final runs: every (model, seed) is trained with its fixed + tuned parameters and evaluated on test.

A final run is recorded under the output folder by a hash of its resolved configuration (+ data
checksum, profile identity, code version) and skipped on rerun; runs and trials are logged to MLflow
once. Killing the process at any point and rerunning completes the suite without duplicates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState
from tqdm.auto import tqdm

from baselines.registry import MODELS, FitContext, get_model
from benchmark import paths
from benchmark.data.dataset import Interactions, load_dataset
from benchmark.data.errors import DataError
from benchmark.metrics import evaluate
from benchmark.profile_settings import ProfileResources
from benchmark.runs import RunSpec, result_path, write_json_atomically
from benchmark.split import Split, SplitConfig
from benchmark.suite import DatasetEntry, ModelEntry, Suite, load_suite
from benchmark.targets import llm_profile_targets
from benchmark.tracking import Tracker, default_tracking_uri, record_tags, split_tag
from benchmark.tuning import (
    PruningCallback,
    best_params,
    default_storage,
    finished_trials,
    load_study,
    open_study,
    run_trials,
    study_name,
    suggest,
)

SUMMARY_METRICS = ("ndcg@10", "hr@10", "mrr@10", "coverage@10")
optuna.logging.set_verbosity(optuna.logging.WARNING)


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
    progress: bool = True
    budget: float | None = None  # seconds: start no final run or study that its estimate says would overrun it


@dataclass(frozen=True)
class Stage:
    """One dataset under one split."""

    dataset: DatasetEntry
    log: Interactions
    config: SplitConfig
    split: Split


class SuiteRunner:
    """Runs the phases of one suite; see the module docstring."""

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
        self._tracker: Tracker | None = None
        self.bar: tqdm | None = None
        self.records: list[tuple[dict, pd.DataFrame]] = []  # final runs of the last `run`, with per-user metrics
        self.left: list[dict[str, Any]] = []  # what the budget left undone: dataset, model, seed, estimate
        self.started = time.monotonic()
        self._run_seconds: dict[str, dict[str, list[float]]] = {}  # dataset -> label -> recorded run times

    @property
    def tracker(self) -> Tracker:
        """The MLflow tracker (opened on first use)."""
        if self._tracker is None:
            uri = self.options.tracking_uri or default_tracking_uri(self.options.cache_dir)
            self._tracker = Tracker(uri, self.suite.name)
        return self._tracker

    # -- what to run ---------------------------------------------------------------------------------

    def datasets(self) -> list[DatasetEntry]:
        """The selected datasets."""
        wanted = self.options.only.get("dataset")
        return [d for d in self.suite.datasets if wanted is None or d.label in wanted]

    def finals(self, dataset: str) -> list[ModelEntry]:
        """Entries whose final runs are selected on `dataset`."""
        wanted = self.options.only.get("model")
        return [m for m in self.suite.models if m.applies_to(dataset)
                and (wanted is None or {m.name, m.display} & wanted)]

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

    def stages(self) -> Iterator[Stage]:
        """Each selected dataset under each split (loaded lazily, one at a time)."""
        for entry in self.datasets():
            log = load_dataset(entry.source, data_dir=self.options.data_dir, cache_dir=self.options.cache_dir,
                               preprocessing=entry.preprocessing)
            for config in self.suite.splits_of(entry):
                yield Stage(entry, log, config, config.apply(log))

    def study_of(self, stage: Stage, entry: ModelEntry) -> str:
        """The name of the entry's Optuna study on this dataset and split."""
        return study_name(self.suite.name, stage.dataset.label, stage.config, entry.display)

    # -- phases --------------------------------------------------------------------------------------

    def ensure_profiles(self, stage: Stage) -> None:
        """Generate and embed the LLM profiles that this stage's distilling models need."""
        settings = {MODELS[m.name].profile_settings(self.final_params(stage, m, tuned_only=False)[0])
                    for m in self.finals(stage.dataset.label)} - {None}
        for profile_settings in settings:
            resources = ProfileResources(profile_settings, self._cache_path)
            llm_profile_targets(stage.split, resources, progress=self.options.progress)
            resources.store.close()

    def tune(self, stage: Stage, entry: ModelEntry) -> None:
        """Fill the entry's study up to the budget."""
        name = self.study_of(stage, entry)
        study = open_study(name, self.storage, self.suite.tuning, self.options.worker)
        base, _ = self.base_params(stage, entry)
        tags = self._tags(stage, entry.name)

        def objective(trial: optuna.Trial) -> float:
            trial.set_user_attr("worker", self.options.worker)
            params = base | suggest(trial, entry.search)
            pruning = PruningCallback(trial, first_epoch=MODELS[entry.name].resolve(params).get("distil_epochs", 0))
            self._status(f"tune {entry.display} trial {trial.number}")
            context = FitContext(seed=self.suite.tuning.seed, evaluation=self.suite.evaluation,
                                 progress=self.options.progress, cache_dir=self._cache_path, callbacks=(pruning,))
            return float(get_model(entry.name).fit(stage.split, params, context).info["best_val"])

        def logged(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            self.tracker.log_trial(name, trial, tags)
            if self.bar is not None and not trial.user_attrs.get("over_budget"):
                self.bar.update()

        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if trial.user_attrs.get("worker") == self.options.worker:  # finished before a kill, maybe unlogged
                self.tracker.log_trial(name, trial, tags)
        run_trials(study, objective, self.suite.tuning.trials, callbacks=[logged])

    def base_params(self, stage: Stage, entry: ModelEntry, *, tuned_only: bool = True
                    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The entry's parameters before its own tuning: its `params_from` source's final parameters
        that it accepts, then its own fixed ones; with the tuning record they inherit."""
        params: dict[str, Any] = {}
        tuning = None
        if entry.params_from is not None:
            params, tuning = self.final_params(stage, self.suite.model(entry.params_from), tuned_only=tuned_only)
            accepted = MODELS[entry.name].accepted_params
            params = {k: v for k, v in params.items() if k in accepted}
        return params | entry.params, tuning

    def final_params(self, stage: Stage, entry: ModelEntry, *, tuned_only: bool = True
                     ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The entry's final parameters (base, then its best trial's) and the study they come from.

        Before tuning has finished, `tuned_only=False` returns the parameters known so far instead
        of raising.
        """
        params, tuning = self.base_params(stage, entry, tuned_only=tuned_only)
        if not entry.search:
            return params, tuning
        name = self.study_of(stage, entry)
        try:
            study = load_study(name, self.storage)
            tuned, best = best_params(study)
        except (KeyError, ValueError):
            if tuned_only:
                raise ValueError(f"study {name} has no complete trial yet: run its tuning first") from None
            return params, tuning
        return params | tuned, {"study": name, "best_trial": best.number, "best_value": best.value,
                                "trials": finished_trials(study)}

    def run_spec(self, stage: Stage, entry: ModelEntry, params: dict[str, Any], seed: int) -> RunSpec:
        """The run's full identity."""
        spec = MODELS[entry.name]
        settings = spec.profile_settings(params)
        return RunSpec(self.suite.name, stage.dataset.label, stage.log.fingerprint, stage.config.as_dict(),
                       asdict(self.suite.evaluation), entry.name, entry.display, spec.resolve(params), seed,
                       settings.identity if settings is not None else None)

    def execute(self, stage: Stage, spec: RunSpec, tuning: dict[str, Any] | None) -> dict:
        """Fit, evaluate on test, and record one final run (the record file is written last)."""
        path = result_path(self.output, spec)
        started = time.perf_counter()
        context = FitContext(seed=spec.seed, evaluation=self.suite.evaluation, checkpoint=path.with_suffix(".ckpt"),
                             progress=self.options.progress, cache_dir=self._cache_path)
        fitted = get_model(spec.model).fit(stage.split, dict(spec.params), context)
        fit_seconds = time.perf_counter() - started
        result = evaluate(fitted.model, stage.log, stage.split.test, max_len=fitted.model.max_len,
                          config=self.suite.evaluation)
        per_user, extra = result.per_user, {}
        for name, config in self.suite.extra_evaluations.items():
            other = evaluate(fitted.model, stage.log, stage.split.test, max_len=fitted.model.max_len, config=config)
            per_user = per_user.join(other.per_user.drop(columns="user_id").add_prefix(f"{name}/"))
            extra[name] = {"evaluation": asdict(config), "test": other.means}
        per_user_path = path.with_suffix(".per_user.csv.gz")
        per_user_path.parent.mkdir(parents=True, exist_ok=True)
        per_user.to_csv(per_user_path)
        record = {"key": spec.key, "config": spec.as_dict(), "split_report": stage.split.report(),
                  "test": result.means, **({"test_extra": extra} if extra else {}), "fit": fitted.info, "fit_seconds": fit_seconds, "tuning": tuning,
                  "host": host(),
                  "eval_seconds": time.perf_counter() - started - fit_seconds, "per_user": per_user_path.name}
        write_json_atomically(path, record)  # its presence marks the run as done
        context.checkpoint.unlink(missing_ok=True)
        return record

    # -- whole suite ---------------------------------------------------------------------------------

    def run(self) -> pd.DataFrame:
        """All phases for every selected dataset and split; one summary row per final run."""
        rows = []
        seeds = self.suite.seeds
        total = sum((len(self.finals(d.label)) * len(seeds) + len(self.tuned(d.label)) * self.suite.tuning.trials)
                    * len(self.suite.splits_of(d)) for d in self.datasets())
        self.bar = tqdm(total=total, desc=f"suite {self.suite.name}", unit="run", disable=not self.options.progress)
        for stage in self.stages():
            self._status(f"{stage.dataset.label}: profiles")
            self.ensure_profiles(stage)
            untuned = set()
            for entry in self.tuned(stage.dataset.label):
                study = self.study_of(stage, entry)
                done = min(self._finished(study), self.suite.tuning.trials)
                self.bar.update(done)
                estimate = self.estimate(stage.dataset.label, entry.display)
                if self.fits(None if estimate is None else estimate * (self.suite.tuning.trials - done)):
                    self.tune(stage, entry)
                else:
                    untuned.add(entry.display)
            for entry in self.finals(stage.dataset.label):
                if self.lineage(entry) & untuned:
                    self.left += [{"dataset": stage.dataset.label, "model": entry.display, "seed": seed,
                                   "estimate_s": None, "why": "its tuning did not fit the budget"} for seed in seeds]
                    continue
                params, tuning = self.final_params(stage, entry)
                for seed in seeds:
                    spec = self.run_spec(stage, entry, params, seed)
                    path = result_path(self.output, spec)
                    self._status(f"{stage.dataset.label} {entry.display} seed {seed}")
                    if path.is_file():
                        record = json.loads(path.read_text()) | {"cached": True}
                    elif not self.fits(estimate := self.estimate(stage.dataset.label, entry.display)):
                        self.left.append({"dataset": stage.dataset.label, "model": entry.display, "seed": seed,
                                          "estimate_s": estimate, "why": "would overrun the budget"})
                        continue
                    else:
                        record = self.execute(stage, spec, tuning)
                        self._run_seconds.pop(stage.dataset.label, None)  # read again with this run
                    per_user = pd.read_csv(path.parent / record["per_user"], index_col=0)
                    self.tracker.log_final(record, per_user, record_tags(record))
                    self.records.append((record, per_user))
                    rows.append(_summary_row(record))
                    self.bar.update()
        self.bar.close()
        return pd.DataFrame(rows)

    def tune_all(self) -> pd.DataFrame:
        """Only the tuning phase (what a `benchmark.tune` worker does); one row per study."""
        rows = []
        for stage in self.stages():
            tuned = self.tuned(stage.dataset.label)
            if tuned:
                self.ensure_profiles(stage)
            for entry in tuned:
                self.tune(stage, entry)
                name = self.study_of(stage, entry)
                study = load_study(name, self.storage)
                params, best = best_params(study)
                rows.append({"study": name, "trials": finished_trials(study), "best_trial": best.number,
                             "best_val_ndcg@10": best.value, "best_params": params})
        return pd.DataFrame(rows)

    def plan(self) -> pd.DataFrame:
        """What a run would do and what is already done, without running anything."""
        rows = []
        for stage in self.stages():
            for entry in self.tuned(stage.dataset.label):
                study = self.study_of(stage, entry)
                done = self._finished(study)
                rows.append({"dataset": stage.dataset.label, "target": stage.config.target, "model": entry.display,
                             "seed": "-", "what": f"tuning {study}",
                             "status": f"{done}/{self.suite.tuning.trials} trials"})
            for entry in self.finals(stage.dataset.label):
                try:
                    params, _ = self.final_params(stage, entry)
                except ValueError:
                    params = None
                for seed in self.suite.seeds:
                    if params is None:
                        status, what = "after tuning", "final run"
                    else:
                        spec = self.run_spec(stage, entry, params, seed)
                        status = "done" if result_path(self.output, spec).is_file() else "to do"
                        what = f"final run {spec.key}"
                    estimate = self.estimate(stage.dataset.label, entry.display) if status != "done" else 0.0
                    rows.append({"dataset": stage.dataset.label, "target": stage.config.target,
                                 "model": entry.display, "seed": seed, "what": what, "status": status,
                                 "estimate_min": None if estimate is None else round(estimate / 60, 1)})
        return pd.DataFrame(rows)

    # -- budget --------------------------------------------------------------------------------------

    def estimate(self, dataset: str, label: str) -> float | None:
        """Seconds one final run of this entry takes on this dataset: the mean of its recorded runs (None
        before the first one is recorded)."""
        times = self._recorded_seconds(dataset).get(label, [])
        return sum(times) / len(times) if times else None

    def _recorded_seconds(self, dataset: str) -> dict[str, list[float]]:
        """Wall time of every recorded final run on `dataset`, by label (read once, and again after a run)."""
        if dataset not in self._run_seconds:
            by_label: dict[str, list[float]] = {}
            for record in (json.loads(path.read_text()) for path in (self.output / dataset).glob("*.json")):
                by_label.setdefault(record["config"]["label"], []).append(record["fit_seconds"] + record["eval_seconds"])
            self._run_seconds[dataset] = by_label
        return self._run_seconds[dataset]

    def fits(self, seconds: float | None) -> bool:
        """Whether work estimated at `seconds` ends within the budget (work without an estimate is started)."""
        if self.options.budget is None or seconds is None:
            return True
        return time.monotonic() - self.started + seconds <= self.options.budget

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def _cache_path(self) -> Path | None:
        return Path(self.options.cache_dir) if self.options.cache_dir else None

    def _finished(self, study: str) -> int:
        try:
            return finished_trials(load_study(study, self.storage))
        except KeyError:
            return 0

    def _status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def _tags(self, stage: Stage, model: str) -> dict[str, str]:
        """The tags of a study's trials (a final run's come from its record: `record_tags`)."""
        return {"suite": self.suite.name, "dataset": stage.dataset.label, "model": model,
                "data_fingerprint": stage.log.fingerprint, "split": split_tag(stage.config.as_dict())}


def host() -> dict[str, Any]:
    """The machine a run ran on (reported with the results)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _summary_row(record: dict) -> dict:
    config = record["config"]
    return {"dataset": config["dataset"], "target": config["split"]["target"], "model": config["label"],
            "seed": config["seed"], **{m: record["test"][m] for m in SUMMARY_METRICS},
            "test_users": record["split_report"]["test_users"],
            "seconds": round(record["fit_seconds"] + record["eval_seconds"], 2),
            "cached": record.get("cached", False)}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by benchmark.run, benchmark.tune and benchmark.ablate."""
    parser.add_argument("--data-dir", help="local dataset mirror (default: $SEQREC_KD_DATA_DIR; else download)")
    parser.add_argument("--cache-dir", help="cache folder (default: $SEQREC_KD_CACHE_DIR or ~/.cache/seqrec-kd-bench)")
    parser.add_argument("--output", help="where run records go (default: results/runs/<suite> for the published "
                        "suites, else <cache-dir>/runs/<suite>)")
    parser.add_argument("--only", help="restrict runs, e.g. dataset=ml-100k,model=sasrec-kd")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cache-dir>/mlflow/mlflow.db)")
    parser.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user:pw@host/db "
                                          "(default: sqlite:///<cache-dir>/optuna/studies.db)")


def options_from(args: argparse.Namespace, **extra: Any) -> RunOptions:
    """RunOptions from parsed common arguments; a `--data-dir` that is not a folder is an error (rather
    than a silent download)."""
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise DataError(f"--data-dir {args.data_dir}: no such folder")
    return RunOptions(data_dir=args.data_dir, cache_dir=args.cache_dir,
                      output=Path(args.output) if args.output else None, only=parse_only(args.only),
                      tracking_uri=args.tracking_uri, storage=args.storage, **extra)


def print_table(table: pd.DataFrame) -> None:
    """Print a result table readably."""
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 80,
                           "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="smoke", help="suite name (benchmark/suites/NAME.yaml) or YAML path")
    add_common_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the plan, what is already done, and estimates")
    parser.add_argument("--budget", type=parse_duration, help="e.g. 2h30m: start no final run or study that its "
                        "estimate (from the runs already recorded) says would end later; report what is left")
    args = parser.parse_args(argv)
    try:
        runner = SuiteRunner(load_suite(args.suite), options_from(args, progress=not args.dry_run,
                                                                  budget=args.budget))
        table = runner.plan() if args.dry_run else runner.run()
    except (DataError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print_plan(table)
        return 0
    print_table(table)
    if runner.left:
        known = [item["estimate_s"] for item in runner.left if item["estimate_s"] is not None]
        print(f"\nbudget: {len(runner.left)} final runs left for a later call (estimated {sum(known) / 3600:.1f} h "
              f"for {len(known)} of them; the others have no recorded run to estimate from):")
        print_table(pd.DataFrame(runner.left))
    uri = runner.tracker.uri
    print(f"\n{len(table)} runs ({int(table['cached'].sum())} already recorded before this command); "
          f"records in {runner.output}\nMLflow tracking URI: {uri}\nbrowse them with: mlflow ui --backend-store-uri {uri}")
    return 0


def print_plan(table: pd.DataFrame) -> None:
    """Print a dry run's plan, its totals and the estimated time of what is left, per dataset."""
    print_table(table)
    finals = table[table["what"].str.startswith("final")] if len(table) else table
    studies = int(table["what"].str.startswith("tuning").sum()) if len(table) else 0
    done = int((finals["status"] == "done").sum()) if len(finals) else 0
    print(f"\n{len(finals)} final runs planned, {done} already done; {studies} studies")
    todo = finals[finals["status"] != "done"] if len(finals) else finals
    for dataset, runs in todo.groupby("dataset") if len(todo) else []:
        known = runs["estimate_min"].dropna()
        print(f"{dataset}: {len(runs)} final runs to do, estimated {known.sum() / 60:.1f} h for the {len(known)} "
              f"with a recorded run of the same entry")


def parse_duration(text: str) -> float:
    """'2h30m', '90m', '45s', '1h' -> seconds (for --budget)."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 2h30m, 90m or 45s, got {text!r}")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


if __name__ == "__main__":
    sys.exit(main())
