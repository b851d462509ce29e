"""Suite validation, the resumable runner, and the README/CI command contract."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from benchmark.errors import DataError
from benchmark.records import read_per_user, read_record, read_records
from benchmark.run import main as run_cli
from benchmark.suite import load_suite
from benchmark.suite_plan import parse_only
from tests.conftest import suite_error

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_suites_validate():
    for path in (ROOT / "benchmark" / "suites").glob("*.yaml"):
        assert load_suite(path).name == path.stem


def test_suite_errors_name_the_key(tmp_path):
    message = suite_error(tmp_path, "name: x\ndatasets: [{name: ml-100k}]\nsplits: [{quantile: 0.9, target: middle}]\n"
                                    "models: [{name: sasrec-9000}]\n")
    assert "splits.0.target" in message and "'middle'" in message
    assert "models.0.name" in message and "sasrec-9000" in message
    with pytest.raises(DataError, match="shipped suites"):
        load_suite("no-such-suite")


def test_a_misspelt_key_is_named_with_its_value_cut_never_the_whole_suite(tmp_path):
    models = ", ".join(f"{{name: sasrec, label: s{i}, params: {{dim: 64, blocks: 2, heads: 2}}}}" for i in range(20))
    message = suite_error(tmp_path, f"name: x\ndatasets: [{{name: ml-100k}}]\nmodles: [{models}]\n")
    assert "models: Field required" in message and "modles: Extra inputs are not permitted" in message
    assert "\n" not in message and len(message) < 250 and "..." in message


def test_only_filter_parsing():
    assert parse_only("dataset=a,model=b,model=c") == {"dataset": {"a"}, "model": {"b", "c"}}
    with pytest.raises(DataError, match="seed=1"):
        parse_only("seed=1")


def test_only_model_selects_the_entry_with_that_label_else_every_entry_of_that_model(tmp_path):
    from benchmark.suite_plan import RunOptions, SuitePlan

    def selected(suite: str, only: str) -> list[str]:
        plan = SuitePlan(load_suite(suite), RunOptions(cache_dir=str(tmp_path), only=parse_only(only)))
        return [m.display for m in plan.finals(plan.suite.datasets[0].label)]

    assert selected("paper", "model=sasrec-kd") == ["sasrec-kd"]  # the method, not its controls
    assert selected("paper", "model=sasrec-kd-random,model=bert4rec") == ["sasrec-kd-random", "bert4rec"]
    controls_only = tmp_path / "controls.yaml"
    controls_only.write_text("name: controls\ndatasets: [{name: ml-100k}]\nsplits: [{quantile: 0.9, target: last}]\n"
                             "models:\n  - {name: sasrec}\n  - {name: sasrec-kd, target: shuffled}\n"
                             "  - {name: sasrec-kd, target: random}\n")
    assert selected(str(controls_only), "model=sasrec-kd") == ["sasrec-kd-shuffled", "sasrec-kd-random"]


SMALL_SUITE = """
name: small
datasets: [{name: ml-100k}]
splits: [{quantile: 0.9, target: last}]
models:
  - {name: mostpop}
  - {name: recentpop}
  - {name: sasrec, params: {dim: 16, blocks: 1, heads: 1, max_len: 20, max_epochs: 2}}
"""


def test_suite_runs_and_resumes(mirror, tmp_path, capsys):
    suite = tmp_path / "small.yaml"
    suite.write_text(SMALL_SUITE)
    args = ["--suite", str(suite), "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "runs")]
    assert run_cli(args) == 0
    records = sorted((tmp_path / "runs").rglob("*.json"))
    assert len(records) == 3
    record = read_record(next(r for r in records if r.name.startswith("sasrec")))
    assert set(record.test) >= {"ndcg@10", "hr@10", "mrr@10", "coverage@10"}
    assert record.fit["epochs_run"] == 2 and len(record.history) == 2
    assert (records[0].parent / record.per_user_file).is_file()
    assert not list((tmp_path / "runs").rglob("*.part")) and not list((tmp_path / "runs").rglob("*.ckpt"))
    capsys.readouterr()

    records[0].unlink()  # as if the process had been killed before this run finished
    assert run_cli(args + ["--dry-run"]) == 0
    assert "2 already done" in capsys.readouterr().out
    assert run_cli(args) == 0
    assert "(2 already recorded before this command)" in capsys.readouterr().out
    assert len(sorted((tmp_path / "runs").rglob("*.json"))) == 3


def test_readme_quick_start_is_what_ci_runs():
    """CI extracts the README's two quick-start commands and runs them word for word."""
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, flags=re.S)
    assert len(commands) == 2, "the quick start must state exactly two commands"
    assert "pip install torch==2.13.0" in commands[0] and "-c constraints.txt" in commands[0]
    assert "python -m benchmark.run --suite smoke --data-dir ../shared/datasets" in commands[0]
    assert "python -m pytest -q" in commands[1]
    ci = ROOT / ".ci" / "run"
    script = ci.read_text()
    assert 'bash -euo pipefail -c "$(quick_start 0)"' in script and 'bash -euo pipefail -c "$(quick_start 1)"' in script
    extracted = [subprocess.run(["bash", "-c", f"source <(sed -n '/^quick_start()/,/^}}/p' {ci}); quick_start {i}"],
                                capture_output=True, text=True, cwd=ROOT, check=True).stdout.rstrip("\n")
                 for i in (0, 1)]
    assert extracted == commands


def test_bad_model_params_fail_at_load(tmp_path):
    message = suite_error(tmp_path, "name: x\ndatasets: [{name: ml-100k}]\nsplits: [{}]\n"
                          "models: [{name: sasrec, params: {dimm: 64}}, {name: sasrec, label: s2, params: {seed: 3}}]\n")
    assert "models.0" in message and "dimm" in message
    assert "models.1" in message and "seed" in message


def test_run_key_covers_defaults_not_labels():
    from benchmark.records import RunSpec
    from benchmark.suite import ModelEntry

    entry = ModelEntry(name="sasrec", params={"dim": 32})
    assert entry.resolved_params["lr"] == 0.001 and entry.resolved_params["dim"] == 32
    first = RunSpec("s", "d", "f", {}, {}, "sasrec", "a", entry.resolved_params, 0)
    relabelled = RunSpec("s", "d", "f", {}, {}, "sasrec", "b", entry.resolved_params, 0)
    changed = RunSpec("s", "d", "f", {}, {}, "sasrec", "a", entry.resolved_params | {"lr": 0.01}, 0)
    assert first.key == relabelled.key != changed.key


@pytest.mark.parametrize("argv,expected", [
    (["--only", "dataset=ml-200k", "--dry-run"], "--only dataset=ml-200k: not in suite smoke (its datasets: ml-100k)"),
    (["--only", "dataset=ml-200k"], "--only dataset=ml-200k: not in suite smoke (its datasets: ml-100k)"),
    (["--only", "model=sasrec9"], "--only model=sasrec9: not in suite smoke (its models:"),
    (["--data-dir", "/no/such/folder", "--dry-run"], "--data-dir /no/such/folder: no such folder"),
])
def test_bad_run_arguments_give_one_line_errors(argv, expected, capsys, tmp_path):
    assert run_cli([*argv, "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,expected", [
    (["--control", "layer", "--value", "banana"], "--value 'banana' for --control layer: distill: layer must be"),
    (["--control", "no_beta", "--value", "anything"], "--control no_beta takes no --value"),
    (["--control", "shuffled", "--value", "2"], "--control shuffled takes no --value"),
    (["--control", "dropout"], "--control 'dropout': choose one of"),
])
def test_bad_ablation_arguments_give_one_line_errors(argv, expected, capsys, tmp_path):
    from benchmark.ablate import main as ablate_cli

    assert ablate_cli([*argv, "--dry-run", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1


def test_ablation_dry_run_lists_the_method_and_the_control(capsys, tmp_path, mirror):
    from benchmark.ablate import main as ablate_cli

    assert ablate_cli(["--control", "layer", "--value", "2", "--dry-run", "--cache-dir", str(tmp_path),
                       "--data-dir", str(mirror)]) == 0
    out = capsys.readouterr().out
    # the method's runs are the quick suite's published ones; only the control's are left to train
    assert "sasrec-kd-layer=2" in out and "tuning" in out and "6 final runs planned, 3 already done" in out
    assert all(" to do " in line for line in out.splitlines() if " sasrec-kd-layer=2 " in line and "final run" in line)


def test_a_dataset_given_as_a_yaml_path_runs_under_its_name(tmp_path, capsys):
    (tmp_path / "events.csv").write_text("customer,sku,when\n" + "".join(
        f"c{u},p{(u + d) % 7},{1_700_000_000 + 86400 * d + u}\n" for u in range(12) for d in range(8)))
    (tmp_path / "shop.yaml").write_text("name: shop\ninteractions: events.csv\n"
                                        "columns: {user: customer, item: sku, timestamp: when}\ntimestamp_unit: s\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: yamlpath\ndatasets: [{{name: {tmp_path / 'shop.yaml'}, preprocessing: {{min_user_interactions: 1, "
                     f"min_item_interactions: 1}}}}]\nsplits: [{{quantile: 0.7, target: last, validation: last_train_item}}]\n"
                     f"models: [{{name: mostpop}}]\n")
    assert load_suite(suite).datasets[0].label == "shop"
    assert run_cli(["--suite", str(suite), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert (tmp_path / "cache" / "runs" / "yamlpath" / "shop").is_dir()
    assert "mlflow ui --backend-store-uri sqlite:///" in capsys.readouterr().out


def test_extra_evaluations_are_recorded_and_reported_as_their_own_tables(mirror, tmp_path, capsys):
    """A suite's extra evaluation (seen items filtered besides kept) scores every final run twice, leaves run
    keys alone, and the report gives it its own tables."""
    from analysis.report import main as report_cli

    kept = SMALL_SUITE.replace("splits: [{quantile: 0.9, target: last}]",
                               "splits: [{quantile: 0.9, target: last}]\nevaluation: {filter_seen: false}")
    suite = tmp_path / "small.yaml"
    suite.write_text(kept)
    args = ["--suite", str(suite), "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "runs")]
    assert run_cli([*args, "--dry-run"]) == 0
    keys = re.findall(r"final run (\w+)", capsys.readouterr().out)
    suite.write_text(kept + "extra_evaluations: {seen_filtered: {filter_seen: true}}\n")
    assert run_cli([*args, "--dry-run"]) == 0
    assert re.findall(r"final run (\w+)", capsys.readouterr().out) == keys
    assert run_cli(args) == 0
    record_path = next((tmp_path / "runs").rglob("mostpop-*.json"))
    record = read_record(record_path)
    extra = record.test_extra["seen_filtered"]
    assert extra["evaluation"]["filter_seen"] and not record.spec.evaluation["filter_seen"]
    per_user = read_per_user(record_path, record)
    assert per_user["seen_filtered/ndcg@10"].mean() == pytest.approx(extra["test"]["ndcg@10"])
    assert per_user["seen_filtered/ndcg@10"].mean() >= per_user["ndcg@10"].mean()  # filtering can only help
    assert report_cli(["--suite", "small", "--records", str(tmp_path / "runs"), "--output",
                       str(tmp_path / "report")]) == 0
    markdown = (tmp_path / "report" / "leaderboard-small.md").read_text()
    assert "target last, validation by_time)" in markdown and "validation by_time; evaluation seen_filtered)" in markdown
    assert "Extra evaluation `seen_filtered`: seen items filtered" in markdown
    readme = tmp_path / "README.md"
    readme.write_text("<!-- leaderboard:small -->\n<!-- /leaderboard:small -->\n")
    assert report_cli(["--suite", "small", "--records", str(tmp_path / "runs"), "--output",
                       str(tmp_path / "report"), "--readme", str(readme)]) == 0
    assert "validation by_time)" in readme.read_text() and "seen_filtered" not in readme.read_text()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'cache' / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("small").experiment_id], "tags.model = 'mostpop'")
    assert runs[0].data.metrics["test_seen_filtered_ndcg_at_10"] == pytest.approx(extra["test"]["ndcg@10"])


def test_a_published_suite_keeps_its_records_in_results_and_a_fresh_cache_finds_them(mirror, tmp_path, monkeypatch,
                                                                                      capsys):
    from benchmark import paths

    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "PUBLISHED_SUITES", ("small",))
    suite = tmp_path / "small.yaml"
    suite.write_text(SMALL_SUITE)
    assert run_cli(["--suite", str(suite), "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "first")]) == 0
    assert len(list((tmp_path / "results" / "runs" / "small").rglob("*.json"))) == 3
    capsys.readouterr()
    assert run_cli(["--suite", str(suite), "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "fresh"),
                    "--dry-run"]) == 0
    assert "3 final runs planned, 3 already done" in capsys.readouterr().out
    # the records alone rebuild the tracking store of a fresh machine, once
    from mlflow.tracking import MlflowClient

    from benchmark.tracking import main as tracking_cli

    for _ in range(2):
        assert tracking_cli(["import", "--suite", "small", "--cache-dir", str(tmp_path / "fresh")]) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'fresh' / 'mlflow' / 'mlflow.db'}")
    finals = client.search_runs([client.get_experiment_by_name("small").experiment_id], "tags.kind = 'final'")
    records = [record for _, record in read_records(tmp_path / "results" / "runs" / "small")]
    assert sorted(r.data.tags["run_key"] for r in finals) == sorted(r.key for r in records)
    assert "mlflow ui --backend-store-uri" in capsys.readouterr().out


def test_a_budget_starts_no_run_its_estimate_says_would_overrun(mirror, tmp_path, capsys):
    from benchmark.run import parse_duration

    assert parse_duration("2h30m") == 9000 and parse_duration("90m") == 5400 and parse_duration("45s") == 45
    for bad in ("", "2 hours", "h"):
        with pytest.raises(Exception, match="duration"):
            parse_duration(bad)
    suite = tmp_path / "small.yaml"
    suite.write_text(SMALL_SUITE)
    args = ["--suite", str(suite), "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "runs")]
    assert run_cli(args) == 0  # seed 0 of every entry: what the estimates come from
    suite.write_text(SMALL_SUITE + "seeds: [0, 1]\n")
    capsys.readouterr()
    assert run_cli([*args, "--dry-run"]) == 0
    assert "ml-100k: 3 final runs to do, estimated" in capsys.readouterr().out
    assert run_cli([*args, "--budget", "0s"]) == 0
    out = capsys.readouterr().out
    assert "budget: left for a later call: final run × 3 (" in out and "would overrun the budget" in out
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 3
    assert run_cli([*args, "--budget", "1h"]) == 0
    assert "budget:" not in capsys.readouterr().out and len(list((tmp_path / "runs").rglob("*.json"))) == 6


def test_estimates_print_in_readable_units():
    from benchmark.cli import readable_duration

    assert [readable_duration(s) for s in (None, 12.4, 480, 5400, 9000)] == ["?", "~12 s", "~8 min", "1.5 h", "2.5 h"]
