"""`python -m benchmark.perf eval`: how fast full-ranking evaluation is on a real dataset.

Prints wall time for ranking every test task against the whole catalog (random scores, so every
item is a distinct candidate) plus seen-item filtering and all metrics, for each target kind.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from benchmark.data.dataset import load_dataset
from benchmark.metrics import evaluate
from benchmark.split import TARGET_KINDS, SplitConfig


def time_evaluation(dataset: str, data_dir: str | None, quantile: float, repeats: int) -> list[dict]:
    """Best-of-`repeats` evaluation time per target kind, with random scores."""
    log = load_dataset(dataset, data_dir=data_dir)
    generator = torch.Generator().manual_seed(0)

    def random_scores(inputs: torch.Tensor) -> torch.Tensor:
        return torch.rand(inputs.shape[0], log.n_items + 1, generator=generator)

    rows = []
    for target in TARGET_KINDS:
        split = SplitConfig(quantile=quantile, target=target).apply(log)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            evaluate(random_scores, log, split.test, max_len=50)
            timings.append(time.perf_counter() - started)
        rows.append({"target": target, "tasks": len(split.test), "users": len(set(split.test.user.tolist())),
                     "targets": int(split.test.target_rows.size), "seconds": min(timings)})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluation = commands.add_parser("eval", help="time full-ranking evaluation")
    evaluation.add_argument("--dataset", default="ml-1m-5core")
    evaluation.add_argument("--data-dir")
    evaluation.add_argument("--quantile", type=float, default=0.9)
    evaluation.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = time_evaluation(args.dataset, args.data_dir, args.quantile, args.repeats)
    print(f"full-ranking evaluation on {args.dataset} (q={args.quantile}), torch threads "
          f"{torch.get_num_threads()}, best of {args.repeats}:")
    for row in rows:
        print(f"  target {row['target']:10} {row['tasks']:7,} tasks {row['users']:6,} users "
              f"{row['targets']:7,} targets  {row['seconds']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
