"""`python -m benchmark.verify --suite S [--rerun K] [--seed N] [--tolerance T]`: check a leaderboard
before trusting it.

1. Records: every run record of the suite is read back; its configuration must still hash to its key
   and to the key in its file name, and the means of its per-user test metrics must equal the metrics
   it reports (every problem is listed, not just the first).
2. Leaderboard: the suite's report is regenerated from the records into a temporary folder and compared
   byte for byte with the committed one (`results/leaderboard-S.md`, `.csv`, `.tex`, comparisons and
   manifest).
3. With `--rerun K`: K final runs drawn at random (`--seed`: the draw is repeatable) are trained again
   from their recorded configuration on this machine, into a temporary folder, and each test metric is
   compared with its record. On the device type the record names (`host`), a metric may differ by at
   most `--tolerance` (default 1e-6, absolute: CPU training with a fixed seed and thread count repeats
   itself); on another device type the differences are printed and not judged (floating-point order
   differs between devices).

Exit code 0 when every check passes, 1 when one fails, 2 on a user error.
"""

from __future__ import annotations

import argparse
import filecmp
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark import paths
from benchmark.cli import run_command
from benchmark.errors import DataError

if TYPE_CHECKING:
    from benchmark.records import RunRecord

PER_USER_TOLERANCE = 1e-9  # a record's metric against the mean of its per-user values (float sums)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--records", type=Path, help="the suite's records folder (default: results/runs/SUITE for a "
                        "published suite, else <cache-dir>/runs/SUITE)")
    parser.add_argument("--leaderboard", type=Path, help="folder of the committed leaderboard (default: results/ for "
                        "a published suite, else <cache-dir>/reports/SUITE)")
    parser.add_argument("--rerun", type=int, default=0, metavar="K", help="train K randomly chosen final runs again")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw of runs to rerun")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest absolute metric difference of a rerun "
                        "on the recorded device type")
    parser.add_argument("--data-dir")
    parser.add_argument("--cache-dir")
    parser.add_argument("--device", default="cpu", help="where reruns train (cpu, cuda, auto)")
    args = parser.parse_args(argv)
    if args.rerun < 0:
        parser.error("--rerun: give a number of runs >= 0")
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from benchmark.suite import load_suite

    suite = load_suite(args.suite)  # a published name or a suite file
    folder = args.records or paths.records_dir(suite.name, args.cache_dir)
    records, problems = check_records(folder)
    print(f"records: {len(records)} read under {folder}, {len(problems)} problem(s)")
    for problem in problems:
        print(f"  FAIL {problem}")
    leaderboard = args.leaderboard or paths.report_dir(suite.name, args.cache_dir)
    if not (leaderboard / f"leaderboard-{suite.name}.md").is_file():
        print(f"leaderboard: none committed under {leaderboard} (nothing to compare)")
        stale = []
    else:
        stale = _stale_files(args.suite, suite.name, folder, leaderboard)
    for name in stale:
        print(f"  FAIL {name}")
    failed = bool(problems or stale)
    if args.rerun:
        chosen = random.Random(args.seed).sample(sorted(records, key=lambda r: r.key), min(args.rerun, len(records)))
        for record in chosen:
            failed |= not report_rerun(record, rerun(args.suite, record, args), args.tolerance)
    print("verify: " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0


def _stale_files(suite: str, name: str, folder: Path, leaderboard: Path) -> list[str]:
    try:
        stale = check_leaderboard(suite, name, folder, leaderboard)
    except DataError as error:  # a corrupt record (listed above) stops the regeneration
        return [f"leaderboard not regenerated: {error}"]
    print(f"leaderboard: regenerated from the records, {len(stale)} file(s) differ from {leaderboard}")
    return stale


def check_records(folder: Path) -> tuple[list[RunRecord], list[str]]:
    """(the readable records of `folder`, one line per problem): a record that does not hash to its key or
    its file name, a missing per-user file, a metric that is not the mean of its per-user values."""
    from benchmark.records import read_per_user, read_record

    if not folder.is_dir():
        raise DataError(f"{folder}: no run records")
    records, problems = [], []
    for path in sorted(folder.rglob("*.json")):
        try:
            record = read_record(path)
            per_user = read_per_user(path, record)
        except (DataError, OSError) as error:
            problems.append(str(error))
            continue
        records.append(record)
        for metric, value in record.test.items():
            if metric in per_user and abs(per_user[metric].mean() - value) > PER_USER_TOLERANCE:
                problems.append(f"{path}: test {metric} {value!r} is not the mean of its per-user values "
                                f"({per_user[metric].mean()!r})")
    return records, problems


def check_leaderboard(suite: str, name: str, records: Path, committed: Path) -> list[str]:
    """The files of the committed report of `suite` (named `name`) that a regeneration from `records`
    does not reproduce byte for byte (missing ones included)."""
    from analysis.leaderboard import model_order, write_report
    from analysis.runs import load_records

    order, margin = model_order(suite)
    with tempfile.TemporaryDirectory() as scratch:
        write_report(load_records(records), name, Path(scratch), order, None, margin)
        names = sorted(p.name for p in Path(scratch).glob(f"*-{name}*") if p.is_file())
        return [name for name in names
                if not (committed / name).is_file() or not filecmp.cmp(Path(scratch) / name, committed / name, shallow=False)]


def rerun(suite_name: str, record: RunRecord, args: argparse.Namespace) -> RunRecord:
    """Train and test the recorded run again, from its recorded configuration, into a temporary folder."""
    from benchmark.suite import load_suite
    from benchmark.suite_executor import SuiteExecutor
    from benchmark.suite_plan import RunOptions, SuitePlan
    from benchmark.trainer import resolve_device

    print(f"rerun: {record.dataset} {record.label} seed {record.seed} (run {record.key}) ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        options = RunOptions(data_dir=args.data_dir, cache_dir=args.cache_dir, output=Path(scratch),
                             only={"dataset": {record.dataset}}, tracking_uri="none",
                             device=resolve_device(args.device))
        plan = SuitePlan(load_suite(suite_name), options)
        wanted = record.split_config()
        stage = next((s for s in plan.stages() if s.config == wanted), None)
        if stage is None:
            raise DataError(f"suite {suite_name} has no split {wanted} of {record.dataset} any more: "
                            "the run cannot be repeated")
        return SuiteExecutor(plan).execute(stage, record.spec, record.tuning)


def _device_type(record: RunRecord) -> tuple[str | None, str | None]:
    host = record.host or {}
    return host.get("cpu"), host.get("gpu")


def report_rerun(recorded: RunRecord, again: RunRecord, tolerance: float) -> bool:
    """Print every test metric of the rerun against its record; whether the rerun passes (always, when it
    ran on another device type: then the differences are shown, not judged)."""
    same_device = _device_type(recorded) == _device_type(again)
    worst = 0.0
    for metric, value in sorted(recorded.test.items()):
        difference = again.test[metric] - value
        worst = max(worst, abs(difference))
        print(f"  {metric:14} recorded {value:.6f}  rerun {again.test[metric]:.6f}  difference {difference:+.2e}")
    if not same_device:
        print(f"  not judged: recorded on {_device_type(recorded)}, rerun on {_device_type(again)}")
        return True
    passed = worst <= tolerance
    print(f"  {'pass' if passed else 'FAIL'}: largest difference {worst:.2e} (tolerance {tolerance:g}, same device type)")
    return passed


if __name__ == "__main__":
    sys.exit(main())
