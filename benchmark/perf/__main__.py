"""`python -m benchmark.perf eval|train|distill|profiles|startup`: the benchmark scripts (see the package's
docstring for what each prints)."""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import benchmark.perf
from benchmark.perf import TRAIN_CONFIGS

ROOT = Path(__file__).resolve().parents[2]
# Every command line users type: `--help` of each must answer within a second.
ENTRY_POINTS = ("benchmark.run", "benchmark.tune", "benchmark.ablate", "benchmark.tracking", "benchmark.data",
                "benchmark.profiles", "benchmark.profiles.worker", "benchmark.study_archive", "benchmark.constraints",
                "benchmark.perf", "analysis.report", "analysis.compare", "analysis.profile_semantics")


def wall_seconds(command: list[str], repeats: int) -> float:
    """The fastest of `repeats` wall times of `command` (run from the repository root; it must succeed)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def print_startup(suite: str, data_dir: str | None, repeats: int) -> int:
    """Print how long every entry point takes to answer `--help`, how long a dry run of `suite` takes to
    start (its imports and suite loading, before it reads a dataset) and to finish."""
    print(f"start-up, fastest of {repeats} (Python {sys.version.split()[0]}):")
    for module in ENTRY_POINTS:
        print(f"  python -m {module} --help: {wall_seconds([sys.executable, '-m', module, '--help'], repeats):.2f} s",
              flush=True)
    start = ("from benchmark.suite import load_suite; from benchmark.suite_executor import SuiteExecutor; "
             f"from benchmark.run import plan_table; load_suite({suite!r})")
    print(f"  --suite {suite} --dry-run, start (imports + suite): "
          f"{wall_seconds([sys.executable, '-c', start], repeats):.2f} s", flush=True)
    dry_run = [sys.executable, "-m", "benchmark.run", "--suite", suite, "--dry-run",
               *(["--data-dir", data_dir] if data_dir else [])]
    print(f"  --suite {suite} --dry-run, whole: {wall_seconds(dry_run, repeats):.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=benchmark.perf.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluation = commands.add_parser("eval", help="time full-ranking evaluation")
    training = commands.add_parser("train", help="time training epochs of SASRec and BERT4Rec")
    profiles = commands.add_parser("profiles", help="time profile generation and encoding")
    distill = commands.add_parser("distill", help="distillation overhead in training, latency at inference")
    startup = commands.add_parser("startup", help="how long each command line takes to answer --help, and a dry run")
    for sub in (evaluation, training, profiles, distill, startup):
        sub.add_argument("--dataset", default="ml-1m-5core")
        sub.add_argument("--data-dir")
    evaluation.add_argument("--quantile", type=float, default=0.9)
    evaluation.add_argument("--repeats", type=int, default=3)
    training.add_argument("--models", nargs="+", default=["sasrec", "bert4rec"], help="neural backbones")
    training.add_argument("--config", nargs="+", default=["rectools"], choices=sorted(TRAIN_CONFIGS))
    training.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    training.add_argument("--epochs", type=int, default=2, help="epochs per measurement (the fastest is reported)")
    profiles.add_argument("--users", type=int, default=64)
    profiles.add_argument("--batch-size", type=int, nargs="+", default=[32])
    profiles.add_argument("--max-items", type=int, nargs="+", help="(default: the prompt configuration's)")
    profiles.add_argument("--dtype", nargs="+", default=["bfloat16"], choices=["bfloat16", "float32"])
    profiles.add_argument("--max-new-tokens", type=int, help="(default: the generation parameters')")
    profiles.add_argument("--workers", type=int, nargs="+", default=[2])
    distill.add_argument("--config", default="suite", choices=sorted(TRAIN_CONFIGS))
    distill.add_argument("--epochs", type=int, default=2)
    distill.add_argument("--repeats", type=int, default=5)
    startup.add_argument("--repeats", type=int, default=3, help="runs per command (the fastest is reported)")
    startup.add_argument("--suite", default="quick", help="the suite whose --dry-run is timed")
    args = parser.parse_args(argv)
    if args.command == "startup":
        return print_startup(args.suite, args.data_dir, args.repeats)
    import torch

    from benchmark.perf import timings

    if args.command == "distill":
        row = timings.time_distillation(args.dataset, args.data_dir, args.config, args.epochs, args.repeats)
        print(f"distillation on {args.dataset}, SASRec config {args.config} {TRAIN_CONFIGS[args.config]}:")
        print(f"  training: plain {row['epoch_plain']:.1f} s/epoch, distilled {row['epoch_distilled']:.1f} s/epoch "
              f"(overhead {row['epoch_distilled'] / row['epoch_plain'] - 1:+.1%})")
        print(f"  inference ({row['users']} users): plain {row['latency_plain'] * 1000:.1f} ms, distilled "
              f"{row['latency_distilled'] * 1000:.1f} ms, ratio {row['latency_distilled'] / row['latency_plain']:.2f}; "
              f"identical parameter sets: {row['same_parameters']}")
        return 0
    if args.command == "profiles":
        print(f"profile generation on {args.dataset}, SmolLM2-135M-Instruct (transformers), "
              f"{args.users} users, torch threads {torch.get_num_threads()}")
        from benchmark.profiles.backends import GenerationParams
        from benchmark.profiles.prompts import PromptConfig

        max_new_tokens = args.max_new_tokens or GenerationParams.max_new_tokens
        for dtype in args.dtype:
            for max_items in args.max_items or [PromptConfig.max_items]:
                for batch_size, workers in itertools.product(args.batch_size, args.workers):
                    row = timings.time_profiles(args.dataset, args.data_dir, args.users, batch_size, max_items, dtype,
                                        max_new_tokens, workers)
                    print(f"  {dtype} batch {batch_size:3} workers {workers} max_items {max_items:3} (prompt {row['mean_prompt_tokens']:.0f} tok): "
                          f"{row['profiles_per_min']:6.1f} profiles/min, {row['tokens_per_s']:6.1f} tok/s, "
                          f"{row['mean_tokens']:.0f} tokens/profile, {row['stopped_share']:.0%} ended by EOS; "
                          f"encoder {row['sentences_per_s']:.0f} sentences/s", flush=True)
                    print(f"    e.g. {row['example'][:300]!r}", flush=True)
        return 0
    if args.command == "eval":
        rows = timings.time_evaluation(args.dataset, args.data_dir, args.quantile, args.repeats)
        print(f"full-ranking evaluation on {args.dataset} (q={args.quantile}), torch threads "
              f"{torch.get_num_threads()}, best of {args.repeats}:")
        for row in rows:
            print(f"  target {row['target']:10} {row['tasks']:7,} tasks {row['users']:6,} users "
                  f"{row['targets']:7,} targets  {row['seconds']:.3f} s")
        return 0
    from benchmark.registry import NEURAL_BACKBONES

    unknown = sorted(set(args.models) - set(NEURAL_BACKBONES))
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} not among the neural backbones {', '.join(NEURAL_BACKBONES)}")
    print(f"training on {args.dataset}, torch threads {torch.get_num_threads()}; each line is a fresh process")
    for config in args.config:
        print(f"  config {config}: {TRAIN_CONFIGS[config]}")
    for model in args.models:
        for config in args.config:
            for precision in args.precision:
                # a fresh process per measurement, so peak RSS is that measurement's own
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    row = pool.submit(timings.time_training, model, config, precision, args.epochs,
                                      args.dataset, args.data_dir).result()
                print(f"  {row['model']:8} {row['config']:8} {row['precision']}: {row['epoch_s']:6.1f} s/epoch "
                      f"(first {row['first_epoch_s']:.1f}), {row['sequences_per_s']:6.1f} sequences/s, "
                      f"peak RSS {row['peak_rss_gib']:.2f} GiB, eval {row['eval_users']} users {row['eval_s']:.2f} s",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
