"""`python -m benchmark.run --suite NAME`: run every (dataset, split, model, seed) of a suite.

Finished runs are recorded under the output folder by a hash of their resolved configuration and
skipped on rerun, so an interrupted suite resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from baselines.registry import FitContext, get_model
from benchmark import paths
from benchmark.data.dataset import load_dataset
from benchmark.data.errors import DataError
from benchmark.metrics import evaluate
from benchmark.runs import RunSpec, result_path, write_json_atomically
from benchmark.split import Split
from benchmark.suite import Suite, load_suite

SUMMARY_METRICS = ("ndcg@10", "hr@10", "mrr@10", "coverage@10")


def parse_only(text: str | None) -> dict[str, set[str]]:
    """'dataset=ml-100k,model=mostpop' -> {'dataset': {'ml-100k'}, 'model': {'mostpop'}}."""
    selected: dict[str, set[str]] = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in ("dataset", "model"):
            raise DataError(f"--only: expected dataset=NAME or model=NAME, got {part!r}")
        selected.setdefault(key, set()).add(value)
    return selected


def run_suite(suite: Suite, *, data_dir: str | None, cache_dir: str | None, output: Path,
              only: dict[str, set[str]], dry_run: bool = False) -> pd.DataFrame:
    """Run (or with `dry_run`, list) every selected run of `suite`; return one summary row per run."""
    rows = []
    datasets = [d for d in suite.datasets if "dataset" not in only or d.label in only["dataset"]]
    models = [m for m in suite.models if "model" not in only or {m.name, m.display} & only["model"]]
    total = sum(m.applies_to(d.label) for d in datasets for m in models) * len(suite.splits) * len(suite.seeds)
    progress = tqdm(total=total, desc=f"suite {suite.name}", unit="run", disable=dry_run)
    for entry in datasets:
        log = load_dataset(entry.source, data_dir=data_dir, cache_dir=cache_dir, preprocessing=entry.preprocessing)
        for split_config in suite.splits:
            split = split_config.apply(log)
            for model in (m for m in models if m.applies_to(entry.label)):
                for seed in suite.seeds:
                    spec = RunSpec(suite.name, entry.label, log.fingerprint, split_config.as_dict(),
                                   asdict(suite.evaluation), model.name, model.display, model.resolved_params, seed)
                    path = result_path(output, spec)
                    if dry_run:
                        rows.append(_plan_row(spec, path))
                        continue
                    progress.set_postfix_str(f"{entry.label} {split_config.target} {model.display} seed {seed}")
                    record = _load_record(path) if path.is_file() else _execute(spec, split, suite, path, cache_dir)
                    rows.append(_summary_row(record))
                    progress.update()
    progress.close()
    return pd.DataFrame(rows)


def _execute(spec: RunSpec, split: Split, suite: Suite, path: Path, cache_dir: str | None) -> dict:
    started = time.perf_counter()
    context = FitContext(seed=spec.seed, evaluation=suite.evaluation, checkpoint=path.with_suffix(".ckpt"),
                         cache_dir=Path(cache_dir) if cache_dir else None)
    fitted = get_model(spec.model).fit(split, dict(spec.params), context)
    fit_seconds = time.perf_counter() - started
    result = evaluate(fitted.model, split.log, split.test, max_len=fitted.model.max_len, config=suite.evaluation)
    per_user_path = path.with_suffix(".per_user.csv.gz")
    per_user_path.parent.mkdir(parents=True, exist_ok=True)
    result.per_user.to_csv(per_user_path)
    record = {"key": spec.key, "config": spec.as_dict(), "split_report": split.report(),
              "test": result.means, "fit": fitted.info, "fit_seconds": fit_seconds,
              "eval_seconds": time.perf_counter() - started - fit_seconds, "per_user": per_user_path.name}
    write_json_atomically(path, record)  # last: its presence marks the run as done
    context.checkpoint.unlink(missing_ok=True)
    return record


def _load_record(path: Path) -> dict:
    return json.loads(path.read_text()) | {"cached": True}


def _summary_row(record: dict) -> dict:
    config = record["config"]
    return {"dataset": config["dataset"], "target": config["split"]["target"], "model": config["label"],
            "seed": config["seed"], **{m: record["test"][m] for m in SUMMARY_METRICS},
            "test_users": record["split_report"]["test_users"],
            "seconds": round(record["fit_seconds"] + record["eval_seconds"], 2),
            "cached": record.get("cached", False)}


def _plan_row(spec: RunSpec, path: Path) -> dict:
    return {"dataset": spec.dataset, "target": spec.split["target"], "model": spec.label, "seed": spec.seed,
            "key": spec.key, "status": "done" if path.is_file() else "to do"}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.run", description=__doc__)
    parser.add_argument("--suite", default="smoke", help="suite name (benchmark/suites/NAME.yaml) or YAML path")
    parser.add_argument("--data-dir", help="local dataset mirror (default: $SEQREC_KD_DATA_DIR; else download)")
    parser.add_argument("--cache-dir", help="cache folder (default: $SEQREC_KD_CACHE_DIR or ~/.cache/seqrec-kd-bench)")
    parser.add_argument("--output", help="where run records go (default: <cache-dir>/runs/<suite>)")
    parser.add_argument("--only", help="restrict runs, e.g. dataset=ml-100k,model=mostpop")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and what is already done")
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.suite)
        output = Path(args.output) if args.output else paths.cache_dir(args.cache_dir) / "runs" / suite.name
        table = run_suite(suite, data_dir=args.data_dir, cache_dir=args.cache_dir, output=output,
                          only=parse_only(args.only), dry_run=args.dry_run)
    except (DataError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    if not args.dry_run:
        print(f"\n{len(table)} runs ({int(table['cached'].sum())} from earlier sessions); records in {output}")
    else:
        print(f"\n{len(table)} runs planned, {int((table['status'] == 'done').sum())} already done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
