"""`python -m benchmark.profiles generate|show|stats|export-jobs|import-results`: LLM user profiles for a
dataset split.

Profiles are built from each user's training-period history only, cached in
<cache-dir>/profiles/store.sqlite, and a rerun generates only what is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli import run_command
from benchmark.profiles.settings import GENERATORS
from benchmark.split_kinds import TARGET_KINDS, VALIDATION_KINDS


def max_items_arg(text: str) -> int | None:
    """`--max-items`: a positive count, or 'all' (None) for the whole history."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.profiles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    subs = {name: commands.add_parser(name, help=text) for name, text in [
        ("generate", "generate (or complete) the profiles of every user"),
        ("show", "one user's training history next to their profile"),
        ("stats", "length, empty/duplicate rate, top-genre mentions"),
        ("export-jobs", "write the missing profiles' conversations to a file for benchmark.profiles.worker"),
        ("publish", "write this split's cached profiles to a file that every profile cache loads")]}
    for sub in subs.values():
        sub.add_argument("--dataset", required=True, help="registered name or generic CSV YAML")
        sub.add_argument("--data-dir")
        sub.add_argument("--cache-dir")
        sub.add_argument("--k-core", type=int, default=5)
        sub.add_argument("--quantile", type=float, default=0.9)
        sub.add_argument("--target", choices=TARGET_KINDS, default="first")
        sub.add_argument("--validation", choices=VALIDATION_KINDS, default="by_time")
        sub.add_argument("--validation-fraction", type=float,
                         help="by_user validation: hold out this fraction of the training users (the paper: 0.2)")
        sub.add_argument("--backend", choices=list(GENERATORS), default=next(iter(GENERATORS)))
        sub.add_argument("--model", default="smollm2-135m-instruct", help="registered id, local path, or server model")
        sub.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
        sub.add_argument("--concurrency", type=int, default=8)
        sub.add_argument("--requests-per-second", type=float)
        sub.add_argument("--batch-size", type=int, default=32)
        sub.add_argument("--workers", type=int, default=2,
                         help="transformers backend: generating processes sharing the CPU threads")
        sub.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
        sub.add_argument("--style", choices=["short", "long"], default="short")
        sub.add_argument("--history", choices=["fit", "train"], default="fit",
                         help="fit: the rows models are fitted on (what distillation uses); train: all <= cutoff")
        sub.add_argument("--max-items", type=max_items_arg, default=argparse.SUPPRESS,
                         help="most recent items per prompt, or 'all' for the whole history (default: the "
                              "prompt configuration's)")
        sub.add_argument("--chunk-size", type=int)
        sub.add_argument("--max-new-tokens", type=int, default=argparse.SUPPRESS,
                         help="(default: the generation parameters')")
        sub.add_argument("--limit", type=int, help="only the first N users (a quick look)")
    subs["show"].add_argument("user", help="original user id")
    subs["export-jobs"].add_argument("--out", type=Path, required=True, help="jobs file to write (.jsonl.xz)")
    subs["publish"].add_argument("--out", type=Path, required=True, help="e.g. results/profiles/NAME.jsonl.xz")
    subs["publish"].add_argument("--generated-on", required=True, help="where they were generated, e.g. 'NVIDIA H200'")
    subs["publish"].add_argument("--partial", action="store_true",
                                 help="publish what is cached even if some users have no profile yet")
    subs["publish"].add_argument("--new-only", action="store_true",
                                 help="leave out the profiles an already published file holds (a later part)")
    importer = commands.add_parser("import-results", help="put a worker's results file into the profile cache")
    importer.add_argument("results", type=Path, nargs="+")
    importer.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from benchmark.profiles.commands import run

    return run(args)



if __name__ == "__main__":
    sys.exit(main())
