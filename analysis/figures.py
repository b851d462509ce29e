"""Figures of a suite's results (matplotlib, PNG): gains over the base model with CIs, validation
curves of plain vs distilled models, and the optimisation history of every Optuna study."""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.runs import PRIMARY, FinalRun  # noqa: E402
from benchmark.records import BEST_VALUE_METRIC, KIND_TRIAL, Variant, metric_name  # noqa: E402


def gains_figure(tables: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]], path: Path) -> Path | None:
    """NDCG@10 difference of every variant to its base model (and of the method to each control), 95% CIs;
    None (no file) while no table has a comparison."""
    panels = [(group, compared[compared["metric"] == PRIMARY]) for group, (_, compared) in tables.items()
              if not compared.empty]
    if not panels:
        path.unlink(missing_ok=True)
        return None
    rows = max(len(c) for _, c in panels)
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), max(3.0, 1.6 + 0.45 * rows)),
                                squeeze=False)
    for axis, ((dataset, split), compared) in zip(axes[0], panels):
        labels = [f"{row.model} − {row.reference}" for row in compared.itertuples()]
        y = np.arange(len(labels))[::-1]
        for kind, colour in (("base", "tab:blue"), ("method", "tab:orange")):
            part = (compared["kind"] == kind).to_numpy()
            middle = compared["mean_difference"].to_numpy()[part]
            axis.errorbar(middle, y[part], xerr=[middle - compared["ci_low"].to_numpy()[part],
                                                 compared["ci_high"].to_numpy()[part] - middle],
                          fmt="o", color=colour, ecolor=colour, capsize=3)
        axis.axvline(0, color="grey", lw=0.8)
        axis.set_yticks(y, labels, fontsize=8)
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(6))
        axis.set_xlabel(f"paired per-user difference in {PRIMARY.upper()} (95% bootstrap CI)")
        axis.set_title(f"{dataset} ({split})", fontsize=10)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="") for c in ("tab:blue", "tab:orange")]
    figure.legend(handles, ["variant − base model", "control − distilled model"], loc="lower center", ncol=2,
                  fontsize=8, frameon=False)
    figure.suptitle("Gain over the base model and over the controls", fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


TWIN_SUFFIX = "-shuffled"  # a point's shuffled-profile twin is labelled like the point, plus this


def surface_points(compared: pd.DataFrame) -> list[str]:
    """The distilled entries of a table that have a shuffled-profile twin (`<label>-shuffled`) and a
    comparison with their base model: the points of a response surface, in table order."""
    base = compared[(compared["kind"] == "base") & (compared["metric"] == PRIMARY)]
    labels = list(base["model"])
    return [label for label in labels if f"{label}{TWIN_SUFFIX}" in labels]


def surface_figure(tables: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]], path: Path) -> Path | None:
    """Per table with at least two points (`surface_points`): each point's NDCG@10 gain over the base model
    with its 95% CI, the method and its shuffled-profile twin side by side (does distillation help? does
    the profile content?); None (no file) where no table has such points."""
    panels = [(group, compared[(compared["kind"] == "base") & (compared["metric"] == PRIMARY)].set_index("model"),
               points) for group, (_, compared) in tables.items() if len(points := surface_points(compared)) >= 2]
    if not panels:
        path.unlink(missing_ok=True)
        return None
    figure, axes = plt.subplots(len(panels), 1, figsize=(8.5, len(panels) * max(3.0, 1.4 + 0.5 * max(
        len(points) for *_, points in panels))), squeeze=False)
    for axis, ((dataset, split), base, points) in zip(axes[:, 0], panels):
        y = np.arange(len(points))[::-1].astype(float)
        for offset, suffix, colour, name in ((0.15, "", "tab:blue", "method (LLM profiles)"),
                                             (-0.15, TWIN_SUFFIX, "tab:grey", "shuffled-profile twin")):
            rows = base.loc[[f"{point}{suffix}" for point in points]]
            gain, low, high = (rows[c].to_numpy() / rows["reference_mean"].to_numpy()
                               for c in ("mean_difference", "ci_low", "ci_high"))
            axis.errorbar(100 * gain, y + offset, xerr=[100 * (gain - low), 100 * (high - gain)], fmt="o",
                          color=colour, ecolor=colour, capsize=3, label=name)
        axis.axvline(0, color="black", lw=0.8)
        axis.set_yticks(y, points, fontsize=8)
        axis.set_xlabel(f"gain in {PRIMARY.upper()} over {base['reference'].iloc[0]}, % of its mean (95% CI)")
        axis.set_title(f"{dataset} ({split})", fontsize=10)
        axis.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def curve_panels(runs: Sequence[FinalRun]) -> list[tuple[tuple[str, str], list[str]]]:
    """Per table and backbone that has a distilled variant: the plain backbone, then every entry distilled
    from LLM profiles (the method and its one-setting ablations, e.g. sasrec-kd-no_beta, shortest label
    first); target-swap controls stay out (the gains figure compares them)."""
    panels = []
    for group in sorted({run.group for run in runs}):
        variants = {run.label: run.record.variant for run in runs if run.group == group}
        for backbone in sorted({v.backbone for v in variants.values() if v.is_method}):
            plain = sorted((label for label, v in variants.items() if v == Variant(backbone)),
                           key=lambda label: (label != backbone, label))
            distilled = sorted((label for label, v in variants.items() if v.backbone == backbone and v.is_method),
                               key=lambda label: (len(label), label))
            if plain:
                panels.append((group, [plain[0], *distilled]))
    return panels


def curves_figure(runs: Sequence[FinalRun], path: Path) -> Path | None:
    """Validation NDCG@10 per epoch of the curve panels' models, one line per seed."""
    panels = curve_panels(runs)
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(max(5 * len(panels), 7.5), 3.6), squeeze=False)
    for axis, (group, labels) in zip(axes[0], panels):
        colours = cycle(("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown"))
        for label, colour in zip(labels, colours):  # every label drawn, colours reused past six
            for index, run in enumerate(r for r in runs if r.group == group and r.label == label):
                history = pd.DataFrame(run.record.history)
                if history.empty:
                    continue
                axis.plot(history["epoch"] + 1, history[f"val_{PRIMARY}"], color=colour, alpha=0.7, lw=1,
                          label=label if index == 0 else None)
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"validation {PRIMARY.upper()}")
        axis.set_title(f"{group[0]}: {labels[0]} vs distilled", fontsize=10)
        axis.legend(fontsize=8)
    figure.suptitle("Training curves (one line per seed; distillation acts in the first epochs)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def entry_curves_svg(runs: Sequence[FinalRun]) -> str | None:
    """One entry's training curves as inline SVG, one line per seed: validation NDCG@10 per epoch, and
    beside it the distillation weight β per epoch where the fit recorded one (else the training loss).
    Written without a date and with fixed element ids, so the same runs give the same bytes."""
    histories = [(run.record.seed, pd.DataFrame(run.record.history)) for run in runs]
    histories = [(seed, history) for seed, history in histories if not history.empty]
    if not histories:
        return None
    second = "train_beta" if any("train_beta" in h for _, h in histories) else "train_loss"
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for seed, history in histories:
        axes[0].plot(history["epoch"] + 1, history[f"val_{PRIMARY}"], lw=1.2, label=f"seed {seed}")
        if second in history:
            axes[1].plot(history["epoch"] + 1, history[second], lw=1.2, label=f"seed {seed}")
    axes[0].set_ylabel(f"validation {PRIMARY.upper()}")
    axes[1].set_ylabel("β (distillation weight)" if second == "train_beta" else "training loss")
    if second == "train_beta":
        axes[1].set_yscale("log")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "seqrec-kd-bench", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def optuna_figure(tracking_uri: str, suite: str, path: Path) -> Path | None:
    """Each study's trial values and best-so-far curve (from the trials logged to MLflow)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(suite)
    trials = client.search_runs([experiment.experiment_id], f"tags.kind = '{KIND_TRIAL}'", max_results=10000)
    rows = [{"study": t.data.tags["study"], "trial": int(t.data.tags["trial"]), "state": t.data.tags["state"],
             "value": t.data.metrics.get(metric_name(BEST_VALUE_METRIC), np.nan)} for t in trials]
    if not rows:
        return None
    frame = pd.DataFrame(rows).sort_values(["study", "trial"])
    studies = list(dict.fromkeys(frame["study"]))
    columns = min(len(studies), 3)
    lines = int(np.ceil(len(studies) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(4.6 * columns, 3.3 * lines), squeeze=False)
    for axis, study in zip(axes.flat, studies):
        part = frame[frame["study"] == study]
        complete = part[part["state"] == "COMPLETE"]
        pruned = part[part["state"] == "PRUNED"]
        axis.scatter(complete["trial"], complete["value"], s=18, label="complete")
        axis.scatter(pruned["trial"], np.full(len(pruned), complete["value"].min() if len(complete) else 0),
                     marker="x", color="grey", s=18, label="pruned (drawn at the lowest value)")
        axis.step(complete["trial"], complete["value"].cummax(), where="post", color="tab:red", label="best so far")
        axis.set_title(study.split("/", 1)[1], fontsize=8)
        axis.set_xlabel("trial")
        axis.set_ylabel("best validation NDCG@10")
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(studies):]:
        axis.axis("off")
    figure.suptitle(f"Optuna optimisation history, suite {suite}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def suite_figures(tables: dict, runs: Sequence[FinalRun], tracking_uri: str | None, suite: str, folder: Path
                  ) -> list[Path]:
    """Every suite-level figure (the Optuna history only from a tracking store's trials); returns the files
    written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [gains_figure(tables, folder / f"{suite}-gains.png"),
               surface_figure(tables, folder / f"{suite}-surface.png"),
               curves_figure(runs, folder / f"{suite}-training-curves.png"),
               optuna_figure(tracking_uri, suite, folder / f"{suite}-optuna-history.png") if tracking_uri else None]
    return [p for p in written if p is not None]
