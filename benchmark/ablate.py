"""`python -m benchmark.ablate --control side_info [--suite quick] [--method sasrec-kd]`: the method
against one control, with the method's tuned settings reused, and the paired comparison.

Controls that swap the distillation target (same loss, same settings, different teacher):
`side_info` (encoded non-LLM user text), `side_info_mean` (mean of item-text embeddings), `shuffled`
(LLM profiles of other users), `random` (random vectors), `oracle` (LEAKY upper bound: the text of the
user's test-period items). Controls that change one setting of the
method: `no_beta` (no loss balancing) and `no_finetune` (distil during every epoch), which take no
value, and `layer` (default value 1), `aggregation` (attention), `distance` (cosine) and `projection`
(hidden), whose value `--value` may change. The runs are ordinary runs of the suite (same records,
studies and MLflow experiment), so the method's runs are reused; whatever of the method, its tuning
and the control is not recorded yet is trained (`--dry-run` lists it first). Without `--suite` that is
the `quick` suite on ML-100K: its tuning and 3 seeds of both models, about half an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from benchmark.cli import run_command
from benchmark.errors import DataError
from benchmark.run import add_common_arguments, options_from, plan_table, print_plan, print_table

if TYPE_CHECKING:  # the harness is imported once the arguments are parsed (see benchmark.run)
    import pandas as pd

    from benchmark.records import RunRecord
    from benchmark.suite import ModelEntry, Suite

SETTING_CONTROLS: dict[str, tuple[str, Any]] = {  # control -> (parameter, default value)
    "layer": ("layer", 1),
    "aggregation": ("aggregation", "attention"),
    "distance": ("distance", "cosine"),
    "projection": ("projection", "hidden"),
}
OTHER_CONTROLS = (*SETTING_CONTROLS, "no_beta", "no_finetune")


def controls() -> tuple[str, ...]:
    """Every control: each target of `benchmark.methods.targets.TARGETS` but the method's, then the settings'."""
    from benchmark.methods.targets import CONTROL_TARGETS

    return (*CONTROL_TARGETS, *OTHER_CONTROLS)


def control_entry(method: ModelEntry, control: str, value: Any = None) -> ModelEntry:
    """The suite entry of `control` for `method` (a distilled model entry)."""
    from benchmark.methods.targets import CONTROL_TARGETS, METHOD_TARGET
    from benchmark.registry import MODELS
    from benchmark.suite import ModelEntry

    if MODELS[method.name].target(method.params) != METHOD_TARGET:
        distilling = (name for name, spec in MODELS.items() if spec.has_target)
        raise DataError(f"--method {method.display}: ablations apply to a model distilled from LLM profiles "
                        f"(a `{'`, `'.join(distilling)}` entry with target {METHOD_TARGET})")
    if control not in controls():
        raise DataError(f"--control {control!r}: choose one of {', '.join(controls())}")
    if value is not None and control not in SETTING_CONTROLS:
        raise DataError(f"--control {control} takes no --value (controls with a value: {', '.join(SETTING_CONTROLS)})")
    overrides: dict[str, Any] = {}
    if control in CONTROL_TARGETS:
        overrides = {"target": control}
    elif control == "no_finetune":
        overrides = {"distil_epochs": MODELS[method.name].resolve(method.params)["max_epochs"]}
    elif control == "no_beta":
        overrides = {"use_beta": False}
    else:
        parameter, default = SETTING_CONTROLS[control]
        overrides = {parameter: default if value is None else value}
        try:
            MODELS[method.name].resolve(method.params | overrides)
        except (ValueError, TypeError) as error:
            raise DataError(f"--value {value!r} for --control {control}: {error}") from None
    label = f"{method.display}-{control}" + (f"={value}" if value is not None else "")
    return ModelEntry(name=method.name, label=label, params=overrides, datasets=method.datasets, params_from=method.display)


def ablation_suite(suite: Suite, method_label: str, control: str, value: Any = None) -> Suite:
    """The suite with the method's control added (same name: runs, studies and records are shared);
    `--only model=` of the runner then selects the method and the control."""
    from benchmark.suite import Suite

    labels = [m.display for m in suite.models]
    if method_label not in labels:
        raise DataError(f"--method {method_label!r} is not a model of suite {suite.name} ({labels})")
    control = control_entry(suite.model(method_label), control, value)
    if control.display in labels:
        return suite
    return Suite.model_validate(suite.model_dump() | {"models": [*suite.model_dump()["models"], control.model_dump()]})


def comparison(records: list[tuple[RunRecord, pd.DataFrame]], method: str, control: str, metric: str) -> pd.DataFrame:
    """Per dataset and split target: seed mean ± std of both, and the paired per-user randomization test."""
    import numpy as np
    import pandas as pd

    from analysis.runs import FinalRun, seed_averaged
    from analysis.stats import paired_comparison

    rows = []
    groups: dict[tuple[str, str], dict[str, list[FinalRun]]] = {}
    for record, per_user in records:
        group = groups.setdefault((record.dataset, record.split_config().target), {})
        group.setdefault(record.label, []).append(FinalRun(record, per_user))
    for (dataset, target), runs in groups.items():
        if method not in runs or control not in runs:
            continue
        seeds = {label: np.array([run.record.test[metric] for run in runs[label]]) for label in (method, control)}
        test = paired_comparison(seed_averaged(runs[method], metric), seed_averaged(runs[control], metric))
        rows.append({"dataset": dataset, "target": target, f"{method}": f"{seeds[method].mean():.4f} ± {seeds[method].std():.4f}",
                     f"{control}": f"{seeds[control].mean():.4f} ± {seeds[control].std():.4f}",
                     "difference": test.mean_difference, "randomization_p": test.randomization_p, "users": test.users,
                     "seeds": len(seeds[method])})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.ablate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", required=True, help="a distillation target other than the method's (e.g. "
                        f"side_info, shuffled, oracle: the targets table) or one of {', '.join(OTHER_CONTROLS)}")
    parser.add_argument("--suite", default="quick", help="suite whose datasets, splits, seeds and tuning are used")
    parser.add_argument("--method", default="sasrec-kd", help="the distilled model entry (label) to ablate")
    parser.add_argument("--value", help="the setting of a layer, aggregation, distance or projection control "
                        f"(defaults: {', '.join(f'{c}={v}' for c, (_, v) in SETTING_CONTROLS.items())})")
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and tuning this would do, and stop")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    from benchmark.suite import load_suite
    from benchmark.suite_executor import SuiteExecutor
    from benchmark.suite_plan import SuitePlan

    value: Any = int(args.value) if args.value is not None and args.value.lstrip("-").isdigit() else args.value
    suite = ablation_suite(load_suite(args.suite), args.method, args.control, value)
    control = control_entry(suite.model(args.method), args.control, value).display
    options = options_from(args)
    plan = SuitePlan(suite, replace(options, only=options.only | {"model": {args.method, control}},
                                    progress=not args.dry_run))
    if args.dry_run:
        print_plan(plan_table(plan))
        return 0
    executor = SuiteExecutor(plan)
    executor.run()
    table = comparison(executor.records, args.method, control, args.metric)
    print(f"\n{args.metric}: {args.method} vs {control} (seed mean ± std; paired per-user randomization test on seed-averaged "
          f"metrics, uncorrected; difference = method - control)")
    print_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
