"""`python -m analysis.site [--suite S ...] [--output results/site] [--data-dir DIR]`: the leaderboard as
a static site (by default: every published suite whose leaderboard `analysis.report` has published).

Writes, from the suites' run records (the same tables as `analysis.report`), a self-contained site:
`index.html` lists the suites and datasets and holds one sortable, filterable table per suite (every
entry of every dataset and split: the primary metric with its bootstrap CI drawn as a bar, the change
against the base model with its test and equivalence verdicts, the MDE, the leaky mark), each suite's
comparisons of the distilled model with its controls, the published claims and the suite's figures;
`entries/SUITE/DATASET/ENTRY.html` gives one entry's recipe and configuration, its seeds (run keys,
metrics, hardware, wall time), its training curves with β, and for distilled entries a few users'
training histories next to the profile the LLM wrote from them. The tables are DataTables from the
pinned `itables` package, embedded in the page (no network: it opens from `file://` and from any static
server); the rest is plain HTML and CSS from the Jinja2 templates in `analysis/site_templates/`. The
output depends only on the records, the committed profiles and the datasets: building it again writes
the same bytes. The data folder (`--data-dir`, as for `benchmark.run`) is read for the sample users'
histories only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark import paths
from benchmark.cli import run_command

if TYPE_CHECKING:
    import pandas as pd

    from analysis.runs import FinalRun
    from benchmark.records import RunRecord

SITE_DIR = paths.RESULTS_DIR / "site"
TEMPLATES = Path(__file__).with_name("site_templates")
SAMPLE_USERS = 3
SHOWN_HISTORY = 15  # history lines shown per sample user (the most recent; the rest counted)
SHOWN_METRICS = ("hr@10", "mrr@10")  # beside the primary metric in a suite's table


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m analysis.site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", help="a suite to show (repeatable; default: every published "
                        "suite with run records)")
    parser.add_argument("--records", type=Path, action="append", help="the records folder of the --suite at the "
                        "same position (default: results/runs/SUITE for a published suite, else <cache-dir>/runs/SUITE)")
    parser.add_argument("--output", type=Path, default=SITE_DIR, help=f"site folder (default: {SITE_DIR})")
    parser.add_argument("--data-dir", help="dataset folder, for the sample users' histories (default: as benchmark.run)")
    parser.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    suites = args.suite or reported_suites()
    folders = args.records or []
    if len(folders) > len(suites):
        raise ValueError("--records: give one --suite per records folder, in the same order")
    records = [folders[i] if i < len(folders) else paths.records_dir(suite, args.cache_dir)
               for i, suite in enumerate(suites)]
    pages = build_site(list(zip(suites, records)), args.output, args.data_dir, args.cache_dir)
    print(f"wrote {len(pages)} pages under {args.output} (open {args.output / 'index.html'})")
    return 0


def reported_suites() -> list[str]:
    """The published suites whose leaderboard is published (`results/leaderboard-SUITE.md`): a suite still
    running (e.g. a sweep whose records arrive one by one) joins the site with its report."""
    return [suite for suite in paths.PUBLISHED_SUITES
            if (paths.RESULTS_DIR / f"leaderboard-{suite}.md").is_file() and paths.records_dir(suite).is_dir()]


@dataclass(frozen=True)
class Entry:
    """One entry of one suite on one dataset: its runs (the suite's own evaluation) and its page."""

    suite: str
    dataset: str
    label: str
    runs: tuple[FinalRun, ...]

    @property
    def path(self) -> str:
        """The entry page, relative to the site's root."""
        return f"entries/{_slug(self.suite)}/{_slug(self.dataset)}/{_slug(self.label)}.html"

    @property
    def record(self) -> RunRecord:
        """The first seed's record (the recipe is the same for every seed)."""
        return self.runs[0].record


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def build_site(suites: list[tuple[str, Path]], output: Path, data_dir: str | None = None,
               cache_dir: str | None = None) -> list[Path]:
    """Write the site for these (suite, records folder) pairs into `output` (replacing what was there) and
    return the pages written."""
    from analysis.figures import entry_curves_svg
    from analysis.runs import load_records

    if output.exists():
        shutil.rmtree(output)
    (output / "figures").mkdir(parents=True)
    environment = _environment()
    sections, entries = [], []
    for suite, folder in suites:
        section, suite_entries = _suite_section(suite, load_records(folder), environment)
        sections.append(section)
        entries += suite_entries
        for figure in section["figures"]:
            shutil.copyfile(paths.RESULTS_DIR / "figures" / figure, output / "figures" / figure)
    pages = [_write(output / "index.html", environment.get_template("index.html.j2").render(
        sections=sections, table_script=_table_script()))]
    samples = _ProfileSamples(data_dir, cache_dir)
    for entry in entries:
        page = output / entry.path
        page.parent.mkdir(parents=True, exist_ok=True)
        pages.append(_write(page, environment.get_template("entry.html.j2").render(
            entry=entry, root="../../../", recipe=_recipe(entry.record), seeds=_seed_rows(entry),
            curves=entry_curves_svg(entry.runs), samples=samples.of(entry.record, entry.suite))))
    return pages


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _environment() -> Any:
    import jinja2
    from markupsafe import Markup, escape

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    # `code` spans of the report's sentences become <code> (escaped first: the text stays text)
    environment.filters["code_spans"] = lambda text: Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
    return environment


def _table_script() -> str:
    """The DataTables bundle of the pinned `itables`, embedded once per page (no network)."""
    from itables.javascript import generate_init_offline_itables_html
    from itables.options import dt_bundle

    return generate_init_offline_itables_html(dt_bundle)


def _suite_section(suite: str, runs: list[FinalRun], environment: Any) -> tuple[dict[str, Any], list[Entry]]:
    """What the index shows of one suite, and its entries."""
    from analysis.claims import CLAIM_COLUMNS, claim_rows, load_claims
    from analysis.leaderboard import EXTRA_EVALUATION, model_order, protocol, suite_tables, verdict_text
    from analysis.runs import PRIMARY

    order, margin = model_order(suite)
    tables = suite_tables(runs, order, margin)
    entries = {}
    for run in runs:
        if not run.record.evaluation_name:
            entries.setdefault((run.record.dataset, run.label), []).append(run)
    entry_of = {key: Entry(suite, *key, tuple(sorted(members, key=lambda r: r.record.seed)))
                for key, members in entries.items()}
    rows, controls, claims = [], [], []
    cells = environment.get_template("cells.html.j2").module
    for (dataset, split), (summary, compared) in tables.items():
        rows += _table_rows(dataset, split, summary, compared, entry_of, cells)
        primary = compared[compared["metric"] == PRIMARY]
        for _, test in primary[primary["kind"] == "method"].iterrows():
            controls.append({"dataset": dataset, "split": split, "control": test["model"], "method": test["reference"],
                             "difference": f"{-test['mean_difference']:+.4f} [{-test['ci_high']:+.4f}, {-test['ci_low']:+.4f}]",
                             "p": f"{test['randomization_p_holm']:.3g}", "verdict": verdict_text(test, reverse=True)})
        if EXTRA_EVALUATION not in split:
            claims += [{"dataset": dataset, **row} for row in claim_rows(load_claims(), suite, dataset, compared)]
    datasets = sorted({dataset for dataset, _ in tables})
    figures = sorted(p.name for p in (paths.RESULTS_DIR / "figures").glob(f"{suite}-*.png"))
    figures += sorted(p.name for d in datasets for p in (paths.RESULTS_DIR / "figures").glob(f"profiles-*-{d}.png"))
    table = _datatable(suite, rows)
    section = {"name": suite, "anchor": _slug(suite), "description": _description(suite), "datasets": datasets,
               "protocol": protocol(runs, suite, None), "table": table, "controls": controls, "claims": claims,
               "claim_columns": CLAIM_COLUMNS, "figures": figures, "runs": len(runs)}
    return section, list(entry_of.values())


def _description(suite: str) -> str:
    from benchmark.suite import load_suite

    try:
        return load_suite(suite).description
    except ValueError:
        return ""


TABLE_COLUMNS = ("dataset", "split", "backbone", "role", "entry", "seeds", "NDCG@10", "95% CI", "HR@10", "MRR@10",
                 "Δ vs base (%)", "verdict vs base", "p (Holm)", "TOST p (Holm)", "MDE", "leaky")


def _role(record: RunRecord) -> str:
    """How the leaderboard files an entry: the method, a control of it, or a baseline."""
    variant = record.variant
    if variant.is_method:
        return "method"
    return "control" if variant.target is not None else "baseline"


def _table_rows(dataset: str, split: str, summary: pd.DataFrame, compared: pd.DataFrame,
                entry_of: dict[tuple[str, str], Entry], cells: Any) -> list[dict[str, str]]:
    """One row per entry of one table, every value as the page shows it (numbers as plain decimals, so
    that the table sorts them as numbers)."""
    from analysis.leaderboard import verdict_text
    from analysis.runs import LEAKY_MARK, PRIMARY

    base = compared[(compared["kind"] == "base") & (compared["metric"] == PRIMARY)].set_index("model")
    low, high = summary[f"{PRIMARY} ci_low"].min(), summary[f"{PRIMARY} ci_high"].max()
    rows = []
    for label, row in summary.iterrows():
        entry = entry_of[(dataset, label)]
        test = base.loc[label] if label in base.index else None
        rows.append({
            "dataset": dataset, "split": split, "backbone": entry.record.variant.backbone, "role": _role(entry.record),
            "entry": str(cells.entry_link(entry.path, label)), "seeds": str(int(row["seeds"])),
            "NDCG@10": f"{row[PRIMARY]:.4f}",
            "95% CI": str(cells.ci_bar(row[f"{PRIMARY} ci_low"], row[PRIMARY], row[f"{PRIMARY} ci_high"], low, high)),
            **{metric.upper(): f"{row[metric]:.4f}" if metric in row else "" for metric in SHOWN_METRICS},
            "Δ vs base (%)": "" if test is None else f"{100 * test['relative_gain']:.1f}",
            "verdict vs base": "" if test is None else f"{verdict_text(test)} (vs {test['reference']})",
            "p (Holm)": "" if test is None else f"{test['randomization_p_holm']:.3g}",
            "TOST p (Holm)": "" if test is None else f"{test['equivalence_p_holm']:.3g}",
            "MDE": "" if test is None else f"{test['mde']:.4f}",
            "leaky": LEAKY_MARK if row["leaky"] else ""})
    return rows


def _datatable(suite: str, rows: list[dict[str, str]]) -> str:
    """The suite's table as an embedded DataTable: sortable columns, a search box, and filter panes for
    dataset, backbone and role."""
    import pandas as pd
    from itables import to_html_datatable

    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    filtered = [TABLE_COLUMNS.index(name) for name in ("dataset", "backbone", "role")]
    return to_html_datatable(
        frame, table_id=f"table-{_slug(suite)}", connected=False, allow_html=True, showIndex=False, paging=False,
        order=[], classes="display compact", layout={"top1": "searchPanes"},
        searchPanes={"columns": filtered, "layout": "columns-3", "cascadePanes": True, "initCollapsed": False},
        columnDefs=[{"targets": [TABLE_COLUMNS.index("95% CI")], "orderable": False, "searchable": False}])


def _recipe(record: RunRecord) -> list[tuple[str, str]]:
    """The entry's configuration, one (name, value) per line: model, method, split, evaluation, profiles,
    tuning provenance, code and data versions, then every model parameter."""
    spec = record.spec
    variant = record.variant
    lines = [("model", spec.model), ("backbone", variant.backbone), ("method", variant.method or "none"),
             ("target", variant.target or "none"), ("split", ", ".join(f"{k}={v}" for k, v in sorted(spec.split.items()))),
             ("evaluation", ", ".join(f"{k}={v}" for k, v in sorted(spec.evaluation.items()))),
             ("profiles (generator | encoder)", spec.profiles or "none"),
             ("tuning", f"study {record.tuning.study}, best trial {record.tuning.best_trial} of {record.tuning.trials}"
              if record.tuning else "none (the suite's fixed settings)"),
             ("code version", spec.code_version), ("data fingerprint", spec.data_fingerprint)]
    return lines + [(f"param {name}", str(value)) for name, value in sorted(spec.params.items())]


def _seed_rows(entry: Entry) -> list[dict[str, str]]:
    """One row per seed: run key, test metrics, the fit's best epoch, wall time, where it ran."""
    rows = []
    for run in entry.runs:
        record = run.record
        host = record.host or {}
        rows.append({"seed": str(record.seed), "run key": record.key, "NDCG@10": f"{record.test['ndcg@10']:.4f}",
                     "HR@10": f"{record.test['hr@10']:.4f}",
                     "best epoch": str(record.fit.get("best_epoch", "")), "epochs": str(record.fit.get("epochs_run", "")),
                     "β first → last": f"{record.fit['beta_first']:.3g} → {record.fit['beta_last']:.3g}"
                     if "beta_first" in record.fit else "",
                     "fit (min)": f"{record.fit_seconds / 60:.1f}", "evaluation (s)": f"{record.eval_seconds:.1f}",
                     "hardware": ", ".join(str(v) for v in (host.get("cpu"), f"{host.get('cores')} cores", host.get("gpu"))
                                           if v) if host else "not recorded",
                     "finished": record.finished or "not recorded"})
    return rows


class _ProfileSamples:
    """A few users' training histories next to the profiles written from them, for distilled entries:
    read from the published profile file of the entry's generator and split (`results/profiles/`)."""

    def __init__(self, data_dir: str | None, cache_dir: str | None):
        self.data_dir, self.cache_dir = data_dir, cache_dir

    def of(self, record: RunRecord, suite: str) -> dict[str, Any] | None:
        """The samples for this record's entry (None: it distils no LLM profiles, or none is published)."""
        from benchmark.methods.targets import LLM_TARGETS

        if not record.spec.profiles or record.variant.target not in LLM_TARGETS:
            return None
        return self._samples(suite, record.dataset, record.spec.profiles.split("|")[0],
                             tuple(sorted(record.spec.split.items())))

    @cache  # noqa: B019 (one instance per site build)
    def _samples(self, suite: str, dataset: str, generator: str, split: tuple) -> dict[str, Any] | None:
        from benchmark.profiles.lines import PUBLISHED_FORMAT, published_files, read_lines
        from benchmark.profiles.prompts import PromptConfig, item_lines, recent_history, template_for

        for path in published_files(paths.published_profiles_dir()):
            header, rows = read_lines(path, PUBLISHED_FORMAT)
            if (header["backend"], header["dataset"], header["split"]) == (generator, dataset, dict(split)):
                break
        else:
            return None
        chosen = [row for row in rows if row["status"] == "ok"][:SAMPLE_USERS]
        log_split = self._split(suite, dataset, split)
        prompts = header["prompts"]
        config = PromptConfig(style=prompts["style"], history=prompts["history"], max_items=prompts["max_items"],
                              chunk_size=prompts["chunk_size"])
        histories = recent_history(log_split, config)
        dense = {str(user): index for index, user in enumerate(log_split.log.user_ids)}
        fields = template_for(log_split.log.domain).item_fields
        users = []
        for row in chosen:
            lines = item_lines(log_split.log, histories[histories["user"] == dense[row["user"]]], fields)
            users.append({"user": row["user"], "item_count": len(lines), "history": [line[2:] for line in lines[-SHOWN_HISTORY:]],
                          "profile": row["text"]})
        return {"file": path.name, "generated_on": header.get("generated_on", "not recorded"), "users": users}

    def _split(self, suite: str, dataset: str, split: tuple) -> Any:
        from benchmark.data.dataset import load_dataset
        from benchmark.split import SplitConfig
        from benchmark.suite import load_suite

        entry = next(d for d in load_suite(suite).datasets if d.label == dataset)
        log = load_dataset(entry.source, data_dir=self.data_dir, cache_dir=self.cache_dir,
                           preprocessing=entry.preprocessing)
        return SplitConfig(**dict(split)).apply(log)


if __name__ == "__main__":
    sys.exit(main())
