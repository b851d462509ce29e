"""The leaderboard of a suite from its final runs (`analysis.runs`): one table per dataset and split (`table_rows`: every metric's mean and CI per model, every paired comparison with its
verdict), and writing `leaderboard-SUITE.md/.csv/.tex`, the comparisons, the manifest, the index and the
README block. `python -m analysis.report` is its command line; what the numbers mean is said there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims import claims_lines, equivalence_margin, load_claims, smallest_claimed_gain
from analysis.runs import EXTRA_EVALUATION, LEAKY_MARK, METRICS, PRIMARY, FinalRun, seed_averaged
from analysis.stats import (
    ALPHA,
    PairedResult,
    holm,
    mean_ci,
    paired_comparison,
    reversed_verdict,
    seed_test,
    verdict,
)
from benchmark import paths
from benchmark.records import Variant

COMPARISON_COLUMNS = ["model", "reference", "kind", "metric", "seeds", *PairedResult.__dataclass_fields__, "seed_t_test_p",
                      "relative_gain", "reference_mean", "relative_margin"]


def extra_evaluation_runs(runs: list[FinalRun], name: str) -> list[FinalRun]:
    """The runs as one of the suite's extra evaluations saw them (`extra_evaluations` in the suite), with
    that evaluation's per-user metrics and means under the usual metric names; the split label says which."""
    prefix, seen = f"{name}/", []
    for run in runs:
        if name not in run.record.test_extra:
            continue
        columns = {c: c.removeprefix(prefix) for c in run.per_user.columns if c.startswith(prefix)}
        seen.append(FinalRun(run.record.with_evaluation(name), run.per_user[list(columns)].rename(columns=columns)))
    return seen


def base_of(label: str, variants: dict[str, Variant]) -> str | None:
    """The plain backbone a variant is compared with: the table's entry of that backbone without a method
    (the one labelled as the backbone, if several); None for plain models."""
    mine = variants[label]
    if mine.method is None:
        return None
    plain = sorted((other for other, variant in variants.items() if variant == Variant(mine.backbone)),
                   key=lambda other: (other != mine.backbone, other))
    return plain[0] if plain else None


def method_of(label: str, variants: dict[str, Variant]) -> str | None:
    """For a control of a distilled model (another target) or an ablation of it (the method under a label
    extending the method's, as `benchmark.ablate` names them, e.g. sasrec-kd-no_beta), the distilled
    model it is compared with: the table's LLM-profile entry of the same backbone whose label it extends,
    else the only one that is not itself an ablation."""
    mine = variants[label]
    if mine.method != "kd":
        return None
    methods = [other for other, variant in variants.items()
               if other != label and variant.backbone == mine.backbone and variant.is_method]
    extended = [method for method in methods if label.startswith(f"{method}-")]
    if extended:
        return max(extended, key=len)
    originals = [method for method in methods if not any(method.startswith(f"{m}-") for m in methods)]
    return originals[0] if len(originals) == 1 and not mine.is_method else None


def table_rows(runs: list[FinalRun], order: list[str], margin_override: float | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per model with every metric's mean and CI, one row per comparison with its verdict) for one
    table; equivalence margins come from the claims unless `margin_override` (a suite's) is given."""
    by_label: dict[str, list[FinalRun]] = {}
    for run in runs:
        by_label.setdefault(run.label, []).append(run)
    present = set(by_label)
    variants = {label: members[0].record.variant for label, members in by_label.items()}
    extra = sorted(present - set(order))
    method_of_extra = {label: method_of(label, variants) for label in extra}
    labels = []
    for label in (label for label in order if label in present):  # an ablation follows its method
        labels += [label, *(e for e in extra if method_of_extra[e] == label)]
    labels += [label for label in extra if label not in labels]
    metrics = [m for m in METRICS if all(m in r.per_user for r in runs)]
    means = {label: {m: seed_averaged(by_label[label], m) for m in metrics} for label in labels}
    rows = []
    for label in labels:
        seeds = by_label[label]
        row = {"model": label, "seeds": len(seeds), "leaky": variants[label].leaky}
        for metric in metrics:
            low, high = mean_ci(means[label][metric].to_numpy())
            seed_values = np.array([r.record.test[metric] for r in seeds])
            row |= {metric: means[label][metric].mean(), f"{metric} ci_low": low, f"{metric} ci_high": high,
                    f"{metric} seed_std": seed_values.std()}
        rows.append(row)
    summary = pd.DataFrame(rows).set_index("model")
    comparisons = []
    for label in labels:
        references = [("base", base_of(label, variants)), ("method", method_of(label, variants))]
        for kind, reference in references:
            if reference is None:
                continue
            mine, theirs = paired_seeds(by_label[label], by_label[reference])
            margin = equivalence_margin(load_claims(), variants[label].backbone, margin_override)
            for metric in metrics:
                theirs_mean = seed_averaged(theirs, metric)
                result = paired_comparison(seed_averaged(mine, metric), theirs_mean, margin)
                seed_p = seed_test([r.record.test[metric] for r in mine], [r.record.test[metric] for r in theirs])
                comparisons.append({"model": label, "reference": reference, "kind": kind, "metric": metric,
                                    "seeds": len(mine), **result.as_dict(), "seed_t_test_p": seed_p,
                                    "relative_gain": result.mean_difference / theirs_mean.mean()
                                    if theirs_mean.mean() else float("nan"), "reference_mean": theirs_mean.mean(),
                                    "relative_margin": margin})
    return summary, with_verdicts(pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS))


def with_verdicts(compared: pd.DataFrame) -> pd.DataFrame:
    """The comparisons with Holm-adjusted randomization and equivalence p-values (one family per metric:
    the table's comparisons in that metric's column) and each comparison's verdict."""
    compared = compared.copy()
    for column in ("randomization_p", "equivalence_p"):
        compared[f"{column}_holm"] = compared.groupby("metric")[column].transform(lambda p: holm(p.to_numpy()))
    compared["verdict"] = [verdict(row.mean_difference, row.randomization_p_holm, row.equivalence_p_holm)
                           for row in compared.itertuples()]
    return compared


def _seed(run: FinalRun) -> int:
    return run.record.seed


def paired_seeds(runs: list[FinalRun], references: list[FinalRun]) -> tuple[list[FinalRun], list[FinalRun]]:
    """The runs of both sides restricted to the seeds both have, in seed order: a comparison pairs a
    variant's seed s with its reference's seed s (and an unfinished seed drops out of both sides)."""
    common = {_seed(r) for r in runs} & {_seed(r) for r in references}
    return ([r for r in sorted(runs, key=_seed) if _seed(r) in common],
            [r for r in sorted(references, key=_seed) if _seed(r) in common])


def _mark(p: float) -> str:
    return "**" if p < 0.01 else "*" if p < ALPHA else ""


def _seed_p(p: float) -> str:
    """The seed-level test's p-value, or why there is none."""
    return "– (1 seed)" if np.isnan(p) else f"{p:.3g}"


def leaderboard_markdown(summary: pd.DataFrame, compared: pd.DataFrame) -> str:
    """The main table: every metric (mean, significance vs base), then the NDCG@10 detail and the power."""
    return "\n".join([main_table(summary, compared), *detail_table(summary, compared), "", power_note(compared)])


def main_table(summary: pd.DataFrame, compared: pd.DataFrame) -> str:
    """Every metric's mean per model, marked where it differs significantly from the base model."""
    metrics = [m for m in METRICS if m in summary.columns]
    base_tests = compared[compared["kind"] == "base"].set_index(["model", "metric"])
    lines = ["| model | seeds | " + " | ".join(m.upper() for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for label, row in summary.iterrows():
        cells = []
        for metric in metrics:
            mark = ""
            if (label, metric) in base_tests.index:
                mark = _mark(base_tests.loc[(label, metric), "randomization_p_holm"])
            cells.append(f"{row[metric]:.4f}{mark}")
        lines.append(f"| {shown(label, row)} | {int(row['seeds'])} | " + " | ".join(cells) + " |")
    if summary["leaky"].any():
        lines += ["", f"{LEAKY_MARK} leaky by construction: distilled towards the text of the user's test-period "
                      "items; an upper bound of what the distillation channel can carry, not a method."]
    return "\n".join(lines)


def shown(label: str, row: pd.Series) -> str:
    """A label as the tables show it (entries that use test-period information marked: reported, never ranked)."""
    return f"{label} {LEAKY_MARK}" if row["leaky"] else label


def detail_table(summary: pd.DataFrame, compared: pd.DataFrame) -> list[str]:
    """The primary metric with CIs, every paired comparison and its power, one line each."""
    detail = ["", f"{PRIMARY.upper()} in detail (CI: bootstrap 95% over users; Δ: paired per-user difference "
                  "with its CI; d: Cohen's d_z; p: paired randomization test, Holm-adjusted across this table's "
                  f"{PRIMARY.upper()} comparisons; t-test p: paired t-test, unadjusted; seed p: paired t-test across "
                  "seed means; verdict: better or worse where p (Holm) < 0.05, else equivalent where the TOST "
                  "equivalence test within ±margin (Holm-adjusted alike) says so, else inconclusive):", "",
              "| model | mean [95% CI] | ± seed std | vs | Δ [95% CI] | gain | d | p (Holm) | t-test p | seed p | MDE "
              "| verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, row in summary.iterrows():
        head = (f"| {shown(label, row)} | {row[PRIMARY]:.4f} [{row[f'{PRIMARY} ci_low']:.4f}, {row[f'{PRIMARY} ci_high']:.4f}] "
                f"| {row[f'{PRIMARY} seed_std']:.4f} ")
        tests = compared[(compared["model"] == label) & (compared["metric"] == PRIMARY)]
        if tests.empty:
            detail.append(head + "| | | | | | | | | |")
        for _, test in tests.iterrows():
            fewer = test["seeds"] < max(row["seeds"], summary.loc[test["reference"], "seeds"])
            paired = f" ({test['seeds']} paired seeds)" if fewer else ""
            detail.append(head + f"| {test['reference']}{paired} | {test['mean_difference']:+.4f} "
                                 f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}] | {test['relative_gain']:+.1%} "
                                 f"| {test['effect_size']:+.2f} | {test['randomization_p_holm']:.3g}"
                                 f"{_mark(test['randomization_p_holm'])} | {test['t_test_p']:.3g} "
                                 f"| {_seed_p(test['seed_t_test_p'])} | {_power(test)} | {verdict_text(test)} |")
    return detail


def verdict_text(test: pd.Series, reverse: bool = False) -> str:
    """A comparison's verdict in words, with the margin an `equivalent` holds within; `reverse` reads it
    the other way round (reference against model)."""
    word = reversed_verdict(test["verdict"]) if reverse else test["verdict"]
    return f"{word} within ±{test['relative_margin']:.1%}" if word == "equivalent" else word


def underpowered(test: pd.Series) -> bool:
    """Whether a comparison's 95% CI is too wide to tell the paper's smallest claimed gain from no gain."""
    return bool((test["ci_high"] - test["ci_low"]) / 2 > smallest_claimed_gain(load_claims()) * abs(test["reference_mean"]))


def _power(test: pd.Series) -> str:
    relative = test["mde"] / test["reference_mean"] if test["reference_mean"] else float("nan")
    return f"{test['mde']:.4f} ({relative:.1%})" + (" underpowered" if underpowered(test) else "")


def power_note(compared: pd.DataFrame) -> str:
    """One sentence on what the table's comparisons can detect."""
    tests = compared[compared["metric"] == PRIMARY]
    if tests.empty:
        return "Power: no comparison in this table."
    mde = tests["mde"].median()
    relative = mde / tests["reference_mean"].median() if tests["reference_mean"].median() else float("nan")
    weak = int(tests.apply(underpowered, axis=1).sum())
    return (f"Power: over {int(tests['users'].median())} test users, the minimum detectable {PRIMARY.upper()} "
            f"difference (80% power, two-sided α = 0.05, from the observed per-user differences; MDE column) is "
            f"{mde:.4f} at the median, {relative:.1%} of the reference's mean; the paper's smallest claimed gain is "
            f"+{smallest_claimed_gain(load_claims()):.1%}. {weak} of {len(tests)} comparisons are underpowered (95% CI half-width "
            f"above that gain).")


def protocol(runs: list[FinalRun], suite: str, tuning: tuple[int, float] | None) -> list[str]:
    """What a reader needs to reproduce and judge the numbers; `tuning` = (trials run, hours) from a tracking
    store, None when the runs come from their records (which carry no trials)."""
    records = [r.record for r in runs]
    datasets = sorted({(r.dataset, r.spec.data_fingerprint) for r in records})
    evaluation = records[0].spec.evaluation
    seeds = sorted({r.seed for r in records})
    trials = sorted({r.tuning.trials for r in records if r.tuning})
    profiles = sorted({r.spec.profiles for r in records if r.spec.profiles})
    hosts = sorted({f"{h['cpu']}, {h['cores']} cores, torch threads {h['torch_threads']}"
                    + (f", {h['gpu']}" if h.get("gpu") else "")
                    + (", bf16 products emulated in float32" if h.get("bf16_matmul") == "emulated" else "")
                    for r in records if (h := r.host)})
    hours = sum(r.seconds for r in records) / 3600
    versions = sorted({r.spec.code_version for r in records})
    return [
        f"- Suite `{suite}`: {len(records)} final runs; seeds {seeds}; code version {', '.join(versions)}.",
        "- Data: " + "; ".join(f"{name} (fingerprint {fp})" for name, fp in datasets) + ".",
        f"- Evaluation: full ranking over the whole catalogue, seen items {'filtered' if evaluation['filter_seen'] else 'kept'}, "
        f"K = {evaluation['ks']}; global temporal split per table header."
        + "".join(f" Extra evaluation `{name}`: seen items {'filtered' if extra['evaluation']['filter_seen'] else 'kept'}"
                  f" (its own tables)." for name, extra in sorted(records[0].test_extra.items())),
        f"- Tuning: Optuna, {', '.join(map(str, trials))} trials per study (validation NDCG@10), sampled at random, "
        "and by TPE after the startup trials in studies begun after the sampler fix (benchmark/README.md, Tuning); "
        "controls and LLMEmb reuse the tuned settings of the model they control for." if trials
        else "- Tuning: none; every entry runs with its suite's fixed settings.",
        "- Profiles (generator | encoder): " + ("; ".join(profiles) if profiles else "none") + ".",
        "- Hardware: " + ("; ".join(hosts) if hosts else "not recorded") + f"; final runs took {hours:.1f} h "
        "of wall time (fit + evaluation), " + (f"tuning {tuning[1]:.1f} h ({tuning[0]} trials)." if tuning and tuning[0]
                                                 else "no tuning." if not trials
                                                 else "tuning time not in this tracking store (imported records)."
                                                 if tuning else "tuning time not in the run records (the trials "
                                                 "are in the Optuna studies and MLflow)."),
    ]


def table_groups(runs: list[FinalRun]) -> dict[tuple[str, str], list[FinalRun]]:
    """The runs of each table, by (dataset, split): the suite's own evaluation, and each extra evaluation
    of the records (e.g. seen items filtered) as tables of their own."""
    groups: dict[tuple[str, str], list[FinalRun]] = {}
    extra_names = sorted({name for run in runs for name in run.record.test_extra})
    for run in runs + [seen for name in extra_names for seen in extra_evaluation_runs(runs, name)]:
        groups.setdefault(run.group, []).append(run)
    return dict(sorted(groups.items()))


def suite_tables(runs: list[FinalRun], order: list[str], margin_override: float | None = None
                 ) -> dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]]:
    """Every table of a suite's runs (see `table_rows`), by (dataset, split)."""
    return {group: table_rows(members, order, margin_override) for group, members in table_groups(runs).items()}


def suite_name(suite: str) -> str:
    """The name a suite's files carry: its `name` field for a suite given as a file, else as given."""
    from benchmark.suite import load_suite

    try:
        return load_suite(suite).name
    except ValueError:
        return suite


def model_order(suite: str) -> tuple[list[str], float | None]:
    """(the suite's entries in its own order, its equivalence margin if it sets one); a suite no longer
    shipped orders its entries by label and takes the claims' margins."""
    from benchmark.suite import load_suite

    try:
        loaded = load_suite(suite)
    except ValueError:
        return [], None
    return [m.display for m in loaded.models], loaded.equivalence_margin


def write_report(runs: list[FinalRun], suite: str, output: Path, order: list[str], tuning: tuple[int, float] | None,
                 margin_override: float | None = None) -> dict[tuple[str, str], tuple]:
    """Write leaderboard-SUITE.md/.csv/.tex and return the tables per (dataset, split); `tuning` =
    (trials run, hours) for the protocol, from a tracking store (None: the runs come from their records); `margin_override`: the suite's equivalence margin, if it sets one."""
    output.mkdir(parents=True, exist_ok=True)
    tables = suite_tables(runs, order, margin_override)
    markdown = [f"# Leaderboard: suite `{suite}`", "",
                "Generated by `python -m analysis.report` from the "
                + ("runs in the MLflow tracking store" if tuning is not None else "suite's run records") + "; do not "
                "edit by hand. Cells: mean over test users of the seed-averaged metric; * / ** : paired "
                "randomization test, Holm-adjusted across the table's comparisons in that metric, p < 0.05 / 0.01 "
                "against the base model (the plain backbone a variant extends).", "",
                "## Protocol", "", *protocol(runs, suite, tuning), ""]
    long_rows, latex = [], []
    comparison_tables: dict[str, list[pd.DataFrame]] = {}
    for (dataset, split), (summary, compared) in tables.items():
        markdown += [f"## {dataset} ({split})", "", leaderboard_markdown(summary, compared), ""]
        if EXTRA_EVALUATION not in split:  # the claims are about the suite's own evaluation
            markdown += claims_lines(load_claims(), suite, dataset, compared)
        controls = compared[compared["kind"] == "method"]
        if not controls.empty:
            markdown += [f"Distilled model vs its controls ({PRIMARY}; positive Δ = the LLM profiles help; verdict: "
                         "the method against the control):", "",
                         "| control | method | Δ method − control [95% CI] | p (Holm) | verdict |", "|---|---|---|---|---|"]
            for _, test in controls[controls["metric"] == PRIMARY].iterrows():
                markdown.append(f"| {test['model']} | {test['reference']} | {-test['mean_difference']:+.4f} "
                                f"[{-test['ci_high']:+.4f}, {-test['ci_low']:+.4f}] | {test['randomization_p_holm']:.3g} "
                                f"| {verdict_text(test, reverse=True)} |")
            markdown.append("")
        for label, row in summary.iterrows():
            for metric in (m for m in METRICS if m in summary.columns):
                long_rows.append({"dataset": dataset, "split": split, "model": label, "metric": metric,
                                  "mean": row[metric], "ci_low": row[f"{metric} ci_low"],
                                  "ci_high": row[f"{metric} ci_high"], "seed_std": row[f"{metric} seed_std"],
                                  "seeds": int(row["seeds"])})
        if not compared.empty:
            comparison_tables.setdefault(dataset, []).append(compared.assign(dataset=dataset, split=split))
        shown = summary[[m for m in METRICS if m in summary.columns]].rename(columns=str.upper)
        latex.append(shown.to_latex(float_format="%.4f", caption=f"{dataset} ({split})", label=f"tab:{dataset}"))
    for dataset, frames in comparison_tables.items():
        pd.concat(frames).to_csv(output / f"comparisons-{suite}-{dataset}.csv", index=False)
    manifest = [{"run_key": r.record.key, "dataset": r.record.dataset, "model": r.label, "seed": r.record.seed,
                 "code_version": r.record.spec.code_version, "data_fingerprint": r.record.spec.data_fingerprint,
                 "study": r.record.study, "test_ndcg@10": r.record.test["ndcg@10"],
                 "fit_seconds": round(r.record.fit_seconds, 1)} for r in runs]
    pd.DataFrame(manifest).sort_values(["dataset", "model", "seed"]).to_csv(output / f"manifest-{suite}.csv", index=False)
    (output / f"leaderboard-{suite}.md").write_text("\n".join(markdown))
    pd.DataFrame(long_rows).to_csv(output / f"leaderboard-{suite}.csv", index=False)
    (output / f"leaderboard-{suite}.tex").write_text("\n".join(latex))
    write_index(output)
    return tables


def write_index(output: Path) -> Path:
    """Rebuild `leaderboard.md` from every `leaderboard-SUITE.md` in the folder (the headline suite
    `full` first, then by name), each suite's headings one level down."""
    pages = sorted(output.glob("leaderboard-*.md"), key=lambda p: (p.stem != f"leaderboard-{paths.HEADLINE_SUITE}", p.stem))
    lines = ["# Leaderboards", "",
             "Generated by `python -m analysis.report --suite SUITE`; one section per suite reported into this "
             "folder, each also in its own `leaderboard-SUITE.md` (with `.csv` and `.tex` versions).", ""]
    for page in pages:
        lines += [f"#{line}" if line.startswith("#") else line for line in page.read_text().splitlines()] + [""]
    index = output / "leaderboard.md"
    index.write_text("\n".join(lines))
    return index


def embed_in_readme(readme: Path, suite: str, tables: dict[tuple[str, str], tuple], output: Path) -> bool:
    """Replace the block between `<!-- leaderboard:SUITE -->` and `<!-- /leaderboard:SUITE -->` in the
    README with the generated main tables and power notes (so the README's numbers are regenerated, never
    typed); the detail stays in the leaderboard page it links to."""
    start, end = f"<!-- leaderboard:{suite} -->", f"<!-- /leaderboard:{suite} -->"
    text = readme.read_text()
    if start not in text or end not in text:
        return False
    body = [f"Generated by `python -m analysis.report --suite {suite} --readme README.md`; details, CIs "
            f"and the protocol in [{output.name}/leaderboard-{suite}.md]({output.name}/leaderboard-{suite}.md).", ""]
    for (dataset, split), (summary, compared) in tables.items():
        if EXTRA_EVALUATION in split:  # the README shows the suite's own evaluation; extras stay on the page
            continue
        body += [f"**{dataset}** ({split})", "", main_table(summary, compared), "", power_note(compared), "",
                 *claims_lines(load_claims(), suite, dataset, compared)]
    before, rest = text.split(start, 1)
    readme.write_text(before + start + "\n" + "\n".join(body) + rest[rest.index(end):])
    return True
