"""`python -m benchmark.tune --suite NAME [--storage postgresql://...] [--worker N]`: a tuning worker.

Fills the suite's Optuna studies (one per dataset, split and tuned model entry) up to the suite's
trial budget, logging every trial to MLflow as a nested run. Start several workers against one
PostgreSQL storage, on one or many machines, to share the work: the budget counts every worker's
trials, and each worker should get its own `--worker` number (it offsets the sampler's seed). Then
`python -m benchmark.run --suite NAME --storage ...` trains the final models with the best parameters.
"""

from __future__ import annotations

import argparse
import sys

from benchmark.cli import run_command
from benchmark.run import add_common_arguments, options_from, print_table


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True, help="suite name (benchmark/suites/NAME.yaml) or YAML path")
    add_common_arguments(parser)
    parser.add_argument("--worker", type=int, default=0, help="this worker's number (distinct per worker)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    import pandas as pd

    from benchmark.studies import best_params, finished_trials
    from benchmark.suite import load_suite
    from benchmark.suite_executor import SuiteExecutor
    from benchmark.suite_plan import SuitePlan

    plan = SuitePlan(load_suite(args.suite), options_from(args, worker=args.worker, progress=not args.quiet))
    rows = []
    for _, work in SuiteExecutor(plan).tune_all():
        study = plan.study(work.name)
        params, best = best_params(study)
        rows.append({"study": work.name, "trials": finished_trials(study), "best_trial": best.number,
                     "best_val_ndcg@10": best.value, "best_params": params})
    if not rows:
        print("no model entry of this selection has a search space")
    else:
        print_table(pd.DataFrame(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
