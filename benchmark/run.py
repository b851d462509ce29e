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

# The command lines over this module (run, tune, ablate) import the harness (torch, pandas, Optuna...)
# only once their arguments are parsed: `--help` and argument errors answer at once.
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.cli import readable_duration, run_command
from benchmark.errors import DataError
from benchmark.records import RunRecord, read_record
from benchmark.stores import check_storage, check_tracking_uri

if TYPE_CHECKING:
    import pandas as pd

    from benchmark.suite_plan import RunOptions, SuitePlan

SUMMARY_METRICS = ("ndcg@10", "hr@10", "mrr@10", "coverage@10")


def summary_row(record: RunRecord) -> dict[str, Any]:
    """One line of the run summary."""
    return {"dataset": record.dataset, "target": record.split_config().target, "model": record.label,
            "seed": record.seed, **{m: record.test[m] for m in SUMMARY_METRICS},
            "test_users": record.test_users, "seconds": round(record.seconds, 2),
            "cached": record.cached}


def plan_table(plan: SuitePlan) -> pd.DataFrame:
    """What a run would do and what is already done, with estimates, without running anything."""
    import pandas as pd

    from benchmark.estimates import Estimates
    from benchmark.trainer import checkpoint_progress

    estimates, rows = Estimates(plan), []
    for stage in plan.stages():
        work = plan.work(stage)
        where = {"dataset": stage.dataset.label, "target": stage.config.target}
        for study in work.studies:
            trials = plan.suite.tuning.trials
            finished = min(plan.finished_trials(study.name), trials)
            left = trials - finished
            paused = plan.paused_trial(stage, study) if left else None
            status = f"{'' if left else 'done, '}{finished}/{trials} trials"
            if paused is not None:
                status += f", one paused after {paused[0]} epochs"
            seconds = estimates.trials_left(stage, study.entry, left, paused)
            rows.append(where | {"model": study.entry.display, "seed": "-", "what": f"tuning {study.name}",
                                 "status": status, "estimate_s": seconds})
        for final in work.finals:
            progress = None
            if final.spec is None:
                status, what = "after tuning", "final run"
            else:
                status = "done" if recorded(plan.record_path(final.spec)) else "to do"
                if status == "to do" and (progress := checkpoint_progress(plan.checkpoint_path(final.spec))):
                    status = f"paused after {progress[0]} epochs"
                what = f"final run {final.spec.key}"
            estimate = estimates.final_run_left(stage, final.entry, progress) if status != "done" else 0.0
            rows.append(where | {"model": final.entry.display, "seed": final.seed, "what": what, "status": status,
                                 "estimate_s": estimate})
    return pd.DataFrame(rows)


def recorded(path: Path) -> bool:
    """Whether a final run's record is there, read in full: a corrupt one is an error, not "done"."""
    if not path.is_file():
        return False
    read_record(path)
    return True


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by benchmark.run, benchmark.tune and benchmark.ablate."""
    parser.add_argument("--data-dir", help="local dataset mirror (default: $SEQREC_KD_DATA_DIR; else download)")
    parser.add_argument("--cache-dir", help="cache folder (default: $SEQREC_KD_CACHE_DIR or ~/.cache/seqrec-kd-bench)")
    parser.add_argument("--output", help="where run records go (default: results/runs/<suite> for the published "
                        "suites, else <cache-dir>/runs/<suite>)")
    parser.add_argument("--only", help="restrict runs, e.g. dataset=ml-100k,model=sasrec-kd (an entry's label; "
                        "a model name that labels no entry selects all of its entries)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cache-dir>/mlflow/mlflow.db); "
                        "'none': records only, logged later by `python -m benchmark.tracking import`")
    parser.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user:pw@host/db "
                                          "(default: sqlite:///<cache-dir>/optuna/studies.db)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show libraries' INFO logs (MLflow, Optuna...)")
    parser.add_argument("--device", default="auto", help="where models train and score: auto (the GPU if torch "
                                                         "sees one, else the CPU), cpu, cuda or cuda:N")


def options_from(args: argparse.Namespace, **extra: Any) -> RunOptions:
    """RunOptions from parsed common arguments; a `--data-dir` that is not a folder is an error (rather
    than a silent download), and so is a tracking URI or storage that cannot be opened (before any work)."""
    from benchmark.suite_plan import RunOptions, parse_only
    from benchmark.trainer import resolve_device

    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise DataError(f"--data-dir {args.data_dir}: no such folder")
    if args.tracking_uri is not None:
        check_tracking_uri(args.tracking_uri)
    if args.storage is not None:
        check_storage(args.storage)
    return RunOptions(data_dir=args.data_dir, cache_dir=args.cache_dir,
                      output=Path(args.output) if args.output else None, only=parse_only(args.only),
                      tracking_uri=args.tracking_uri, storage=args.storage, device=resolve_device(args.device),
                      **extra)


def print_table(table: pd.DataFrame) -> None:
    """Print a result table readably."""
    import pandas as pd

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
    parser.add_argument("--budget", type=parse_duration, help="e.g. 2h30m: start no final run or trial that its "
                        "estimate (from the runs and trials already recorded) says would end later; report what is left")
    parser.add_argument("--queue", action="store_true", help="share the final runs with other workers through "
                        "the Optuna --storage (PostgreSQL for several machines; give each worker its --worker)")
    parser.add_argument("--worker", type=int, default=0, help="this worker's number (distinct per worker)")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from benchmark.suite import load_suite
    from benchmark.suite_executor import SuiteExecutor
    from benchmark.suite_plan import SuitePlan

    plan = SuitePlan(load_suite(args.suite), options_from(args, progress=not args.dry_run, budget=args.budget,
                                                          queue=args.queue, worker=args.worker))
    if args.dry_run:
        print_plan(plan_table(plan))
        return 0
    executor = SuiteExecutor(plan)
    records = executor.run()
    if plan.suite.description:
        print(f"suite {plan.suite.name}: {plan.suite.description}")
    print_table(pd.DataFrame([summary_row(record) for record in records]))
    if executor.left:
        known = [item["estimate_s"] for item in executor.left if item["estimate_s"] is not None]
        counts = pd.Series([item["work"] for item in executor.left]).value_counts(sort=False)
        print(f"\nbudget: left for a later call: {', '.join(f'{work} × {n}' for work, n in counts.items())} "
              f"(estimated {readable_duration(sum(known))} for {len(known)} of them; the others wait for work above or "
              "have nothing recorded to estimate from):")
        left = pd.DataFrame(executor.left)
        print_table(left.assign(estimate_s=left["estimate_s"].map(readable_duration)).rename(columns={"estimate_s": "estimate"}))
    print(f"\n{len(records)} runs ({sum(r.cached for r in records)} already recorded before this command); "
          f"records in {plan.output}")
    if executor.tracker is None:
        print("not logged to MLflow (--tracking-uri none); log them with: "
              f"python -m benchmark.tracking import --suite {plan.suite.name} --records {plan.output}")
    else:
        uri = executor.tracker.uri
        print(f"MLflow tracking URI: {uri}\nbrowse them with: mlflow ui --backend-store-uri {uri}")
    return 0


def print_plan(table: pd.DataFrame) -> None:
    """Print a dry run's plan (estimates in readable units), its totals and the estimated time of what is
    left, per dataset."""
    shown = table.assign(estimate=table["estimate_s"].map(lambda s: "-" if s == 0 else readable_duration(s)))
    print_table(shown.drop(columns="estimate_s") if len(table) else table)
    finals = table[table["what"].str.startswith("final")] if len(table) else table
    studies = int(table["what"].str.startswith("tuning").sum()) if len(table) else 0
    done = int((finals["status"] == "done").sum()) if len(finals) else 0
    print(f"\n{len(finals)} final runs planned, {done} already done; {studies} studies")
    todo = table[~table["status"].str.startswith("done")] if len(table) else table
    for dataset, rows in todo.groupby("dataset") if len(todo) else []:
        runs, tuning = rows[rows["what"].str.startswith("final")], rows[rows["what"].str.startswith("tuning")]
        known, tuned = runs["estimate_s"].dropna(), tuning["estimate_s"].dropna()
        print(f"{dataset}: {len(runs)} final runs to do, estimated {readable_duration(known.sum())} for the "
              f"{len(known)} whose entry (or the entry it takes parameters from) has a recorded run or trial; tuning "
              f"estimated {readable_duration(tuned.sum())} for {len(tuned)} of {len(tuning)} studies")


def parse_duration(text: str) -> float:
    """'2h30m', '90m', '45s', '1h' -> seconds (for --budget)."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 2h30m, 90m or 45s, got {text!r}")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


if __name__ == "__main__":
    sys.exit(main())
