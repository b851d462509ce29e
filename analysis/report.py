"""`python -m analysis.report [--suite full] [--records DIR | --tracking-uri URI] [--output DIR]`: the
leaderboard.

Reads the suite's final runs (record and per-user test metrics of each run) from its records folder
(`results/runs/SUITE` for a published suite: nothing to import first), or from an MLflow tracking store
with `--tracking-uri` (then the tuning effort and the Optuna history come from its trials), and writes,
under the output folder, `leaderboard-SUITE.md` (the protocol, then one table per
dataset and split), `leaderboard-SUITE.csv` (every number, long format), `leaderboard-SUITE.tex`, the
paired comparisons `comparisons-SUITE-DATASET.csv`, the run manifest `manifest-SUITE.csv` (run key,
model, seed, study, code version of every run reported) and figures in `figures/`; then rebuilds
`leaderboard.md`, what a reader sees first: every suite's leaderboard found in the folder, `full`
first. Nothing is typed by hand: every cell is computed here from the stored per-user metrics.

A cell is the mean over test users of each user's metric averaged over seeds, with a bootstrap 95%
CI over users. Each variant is compared with its base model (the plain backbone it extends; the
popularity baselines have none), and the distilled model with each of its controls, by paired
per-user tests over the seeds both sides finished (`analysis/stats.py`): the paired randomization test
(the marks: * p < 0.05, ** p < 0.01) and TOST equivalence within the claims' margin, each Holm–Bonferroni
adjusted across the table's comparisons of one metric, give every comparison one verdict: better,
worse, equivalent or inconclusive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark import paths
from benchmark.cli import run_command
from benchmark.stores import check_tracking_uri


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=paths.HEADLINE_SUITE, help="suite whose final runs are reported")
    parser.add_argument("--records", type=Path, help="folder of the suite's run records (default: results/runs/SUITE "
                        "for a published suite, else <cache-dir>/runs/SUITE)")
    parser.add_argument("--tracking-uri", help="read the runs from this MLflow tracking store instead of the records "
                        "(e.g. the embedded sqlite:///<cache-dir>/mlflow/mlflow.db)")
    parser.add_argument("--cache-dir")
    parser.add_argument("--output", help="folder for leaderboard-SUITE.* and figures/ (default: results/ for the "
                        f"published suites {', '.join(paths.PUBLISHED_SUITES)}, else <cache-dir>/reports/SUITE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show libraries' INFO logs and download bars")
    parser.add_argument("--readme", type=Path, help="also refresh this README's <!-- leaderboard:SUITE --> block")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    from analysis.figures import suite_figures
    from analysis.leaderboard import embed_in_readme, model_order, suite_name, write_report
    from analysis.runs import load_suite_runs, studies_of, tuning_effort

    if args.tracking_uri is not None:
        check_tracking_uri(args.tracking_uri)
    uri = args.tracking_uri
    name = suite_name(args.suite)  # a suite given as a file reports under its `name`
    runs = load_suite_runs(name, args.records, uri, args.cache_dir)
    order, margin = model_order(args.suite)
    output = Path(args.output) if args.output else paths.report_dir(name, args.cache_dir)
    tuning = tuning_effort(uri, name, studies_of(runs)) if uri else None
    tables = write_report(runs, name, output, order, tuning, margin)
    for path in suite_figures(tables, runs, uri, name, output / "figures"):
        print(f"wrote {path}")
    print(f"wrote {output}/leaderboard-{name}.md, .csv, .tex and leaderboard.md ({len(runs)} runs)")
    if args.readme is not None:
        print(f"{args.readme}: " + ("leaderboard block refreshed" if embed_in_readme(args.readme, name, tables, output)
                                    else f"no <!-- leaderboard:{name} --> block, left unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
