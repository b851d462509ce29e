"""`python -m benchmark.data describe NAME|config.yaml` and `python -m benchmark.data list`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from benchmark import paths
from benchmark.cli import run_command
from benchmark.errors import DataError
from benchmark.split_kinds import TARGET_KINDS, VALIDATION_KINDS

if TYPE_CHECKING:  # the datasets' code (pandas, torch) is imported once the arguments are parsed
    from benchmark.data.spec import DatasetSpec


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="registered datasets and whether the mirror holds them")
    listing.add_argument("--data-dir", help="local mirror folder (default: $SEQREC_KD_DATA_DIR)")
    show = commands.add_parser("describe", help="statistics of one dataset (and of its split)")
    show.add_argument("name", help="registered dataset name or path of a generic CSV dataset YAML")
    show.add_argument("--data-dir", help="local mirror folder (default: $SEQREC_KD_DATA_DIR)")
    show.add_argument("--cache-dir", help="cache folder (default: $SEQREC_KD_CACHE_DIR or ~/.cache/seqrec-kd-bench)")
    show.add_argument("--k-core", type=int, default=5, help="minimum interactions per user and per item")
    show.add_argument("--drop-consecutive-repeats", action="store_true")
    show.add_argument("--split-quantile", type=float, help="also describe a global temporal split at this quantile")
    show.add_argument("--target", choices=TARGET_KINDS, default="first")
    show.add_argument("--validation", choices=VALIDATION_KINDS, default="by_time")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    return run_command(lambda: _list(args) if args.command == "list" else _describe(args))


def _list(args: argparse.Namespace) -> int:
    from benchmark.data.registry import DATASETS, locally_available

    mirror = paths.data_dir(args.data_dir)
    for name, spec in DATASETS.items():
        where = "in mirror" if locally_available(spec, mirror) else "download" if _downloadable(spec) else "missing"
        print(f"{name:18} {spec.domain:9} {where:10} {spec.description}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from benchmark.data.dataset import load_dataset
    from benchmark.data.describe import describe, format_description
    from benchmark.data.preprocess import PreprocessConfig
    from benchmark.data.registry import DATASETS, locally_available
    from benchmark.split import SplitConfig

    try:
        log = load_dataset(args.name, data_dir=args.data_dir, cache_dir=args.cache_dir,
                           preprocessing=PreprocessConfig(args.k_core, args.k_core, args.drop_consecutive_repeats))
        stats = describe(log)
        if args.split_quantile is not None:
            split = SplitConfig(quantile=args.split_quantile, target=args.target, validation=args.validation)
            stats["split"] = split.as_dict() | split.apply(log).report()
    except DataError as error:
        mirror = paths.data_dir(args.data_dir)
        local = [name for name, spec in DATASETS.items() if locally_available(spec, mirror)]
        if local and args.name not in local:
            raise DataError(f"{error} (datasets available in the mirror {mirror}: {', '.join(local)})") from None
        raise
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_description(stats))
        for key, value in stats.get("split", {}).items():
            print(f"  split.{key:28} {value}")
    return 0


def _downloadable(spec: DatasetSpec) -> bool:
    return all(f.url is not None for f in spec.files if not f.optional)


if __name__ == "__main__":
    sys.exit(main())
