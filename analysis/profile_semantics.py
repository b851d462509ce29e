"""`python -m analysis.profile_semantics --dataset ml-100k [split options]`: do the profiles carry semantics?

Embeds every cached LLM profile and, as the reference, the side-information text of the same users
(their fit-period item titles and genres, which the side-info control distils), then measures how
well each user's dominant genre/category is separated in each embedding space: the silhouette score
(cosine) and the kNN purity (share of a user's 10 nearest neighbours with the same dominant label,
against the chance level sum p_label^2). Writes a UMAP plot of both spaces coloured by the dominant
label, the profile length distribution, and the numbers as markdown, into the output folder. Only
cached profiles are read: generate them first (`python -m benchmark.profiles generate ...`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmark.cli import run_command
from benchmark.split_kinds import VALIDATION_KINDS


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m analysis.profile_semantics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--cache-dir")
    parser.add_argument("--quantile", type=float, default=0.9)
    parser.add_argument("--validation", choices=VALIDATION_KINDS, default="by_time")
    parser.add_argument("--output", default="results")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from analysis.semantics import write_report

    print("\n".join(write_report(args.dataset, args.quantile, args.validation, Path(args.output), args.data_dir,
                                 args.cache_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
