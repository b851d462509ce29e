"""`python -m analysis.compare RUNS_DIR [--base sasrec] [--metric ndcg@10]`: seed means of recorded runs
and paired per-user comparisons between variants.

Each variant's per-user metric is averaged over its seeds, then compared user by user with the paired
randomization test of `analysis.stats`. p-values are uncorrected; the full report with
multiple-testing correction, confidence intervals and tables belongs to `analysis.report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.cli import run_command
from benchmark.errors import DataError

if TYPE_CHECKING:  # pandas and SciPy are imported where used: `--help` answers at once
    import pandas as pd

    from analysis.runs import FinalRun


def by_label(runs: list[FinalRun]) -> dict[str, list[FinalRun]]:
    """The runs grouped by model entry label, in seed order."""
    grouped: dict[str, list[FinalRun]] = {}
    for run in sorted(runs, key=lambda run: run.record.seed):
        grouped.setdefault(run.label, []).append(run)
    return grouped


def seed_summary(runs: dict[str, list[FinalRun]], metric: str) -> pd.DataFrame:
    """Per variant: number of seeds, mean and standard deviation over seeds of the test metric."""
    import numpy as np
    import pandas as pd

    rows = []
    for label, seeds in runs.items():
        values = np.array([run.record.test[metric] for run in seeds])
        rows.append({"variant": label, "seeds": len(values), "mean": values.mean(), "std": values.std()})
    return pd.DataFrame(rows).set_index("variant")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a folder of run records (e.g. <cache-dir>/runs/kd-ml100k)")
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--base", default="sasrec", help="variant every other one is compared with")
    args = parser.parse_args(argv)
    return run_command(lambda: _compare(args))


def _compare(args: argparse.Namespace) -> int:
    from analysis.runs import load_records, seed_averaged
    from analysis.stats import paired_comparison

    runs = by_label(load_records(args.runs))
    if not runs:
        raise DataError(f"no run records under {args.runs}")
    summary = seed_summary(runs, args.metric)
    print(f"{args.metric} over seeds:")
    print(summary.to_string(float_format="{:.4f}".format))
    if args.base in runs:
        base = seed_averaged(runs[args.base], args.metric)
        print(f"\nper-user {args.metric} difference vs {args.base} (mean over seeds; paired randomization test, uncorrected):")
        for label, seeds in runs.items():
            if label != args.base:
                result = paired_comparison(seed_averaged(seeds, args.metric), base)
                print(f"  {label:28} {result.mean_difference:+.4f}  p={result.randomization_p:.3g}  (n={result.users})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
