"""The leaderboard's comparisons pair seeds: a variant with an unfinished seed is compared with its
base on the seeds both have, never with a base averaged over more seeds. A rerun of the same entry
under a new key replaces the older record instead of being counted twice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.figures import curve_panels, gains_figure
from analysis.leaderboard import base_of, leaderboard_markdown, method_of, table_rows
from analysis.runs import FinalRun, load_from_mlflow, load_records
from benchmark.records import RunRecord, RunSpec, result_path, variant_of, write_record
from benchmark.tracking import Tracker

USERS = 200


def final_run(label: str, seed: int, scores: np.ndarray, model: str | None = None, lr: float = 0.001) -> FinalRun:
    """A recorded run of `model` (default: the label) whose per-user NDCG@10 is `scores` (other metrics
    left out); another `lr` gives another run key."""
    split = {"quantile": 0.9, "target": "last", "validation": "by_time"}
    spec = RunSpec("synthetic", "synthetic", "fingerprint", split, {}, model or label, label, {"lr": lr}, seed)
    record = RunRecord(spec, {}, {"ndcg@10": float(scores.mean())}, {}, 1.0, 1.0, "per_user.csv.gz")
    return FinalRun(record, pd.DataFrame({"ndcg@10": scores}, index=pd.RangeIndex(USERS, name="user")))


def test_a_variant_missing_a_seed_is_compared_on_the_seeds_both_have():
    rng = np.random.default_rng(0)
    base = {seed: rng.uniform(0, 0.2, USERS) for seed in range(3)}
    # seed 2 of the base is far better than the others; the variant has only seeds 0 and 1, each
    # exactly 0.01 above the base's run with the same seed.
    base[2] += 0.5
    runs = [final_run("sasrec", seed, scores) for seed, scores in base.items()]
    runs += [final_run("sasrec-kd", seed, base[seed] + 0.01) for seed in (0, 1)]
    summary, compared = table_rows(runs, ["sasrec", "sasrec-kd"])
    test = compared[(compared["model"] == "sasrec-kd") & (compared["metric"] == "ndcg@10")].iloc[0]
    assert test["seeds"] == 2
    assert test["mean_difference"] == pytest.approx(0.01, abs=1e-12)
    assert test["ci_low"] == pytest.approx(0.01, abs=1e-9) and test["ci_high"] == pytest.approx(0.01, abs=1e-9)
    assert test["relative_gain"] == pytest.approx(0.01 / np.mean([base[0], base[1]]), rel=1e-9)
    assert summary.loc["sasrec", "seeds"] == 3 and summary.loc["sasrec-kd", "seeds"] == 2
    assert "| sasrec (2 paired seeds) | +0.0100" in leaderboard_markdown(summary, compared)


def test_no_gains_figure_while_nothing_is_compared(tmp_path):
    runs = [final_run("sasrec", 0, np.full(USERS, 0.1))]
    path = tmp_path / "gains.png"
    path.write_bytes(b"stale")
    assert gains_figure({("synthetic", "split"): table_rows(runs, ["sasrec"])}, path) is None
    assert not path.exists()


def test_a_rerun_under_a_new_key_supersedes_the_older_record_in_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "synthetic")
    older = final_run("sasrec-kd", 0, np.full(USERS, 0.1))
    newer = final_run("sasrec-kd", 0, np.full(USERS, 0.3), lr=0.01)
    for run in (older, final_run("sasrec-kd", 1, np.full(USERS, 0.2)), newer):
        tracker.log_final(run.record, run.per_user)
    loaded = {(run.label, run.record.seed): run.record.test["ndcg@10"] for run in load_from_mlflow(uri, "synthetic")}
    assert loaded == {("sasrec-kd", 0): pytest.approx(0.3), ("sasrec-kd", 1): pytest.approx(0.2)}


@pytest.mark.parametrize("newer_lr", [0.01, 0.0001])  # the newer record's path sorts after, then before, the older's
def test_a_rerun_under_a_new_key_supersedes_the_older_record_in_a_records_folder(tmp_path, newer_lr):
    """The later `finished` time wins, whatever the order of the records' file names."""
    runs = [(final_run("sasrec-kd", 0, np.full(USERS, 0.1)), "2026-01-01T00:00:00+00:00"),
            (final_run("sasrec-kd", 1, np.full(USERS, 0.2)), "2026-01-02T00:00:00+00:00"),
            (final_run("sasrec-kd", 0, np.full(USERS, 0.3), lr=newer_lr), "2026-01-03T00:00:00+00:00")]
    for run, finished in runs:
        path = result_path(tmp_path, run.record.spec)
        record = replace(run.record, per_user_file=f"{path.stem}.csv.gz", finished=finished)
        path.parent.mkdir(parents=True, exist_ok=True)
        run.per_user.to_csv(path.parent / record.per_user_file)
        write_record(path, record)
    loaded = {(run.label, run.record.seed): run.record.test["ndcg@10"] for run in load_records(tmp_path)}
    assert loaded == {("sasrec-kd", 0): pytest.approx(0.3), ("sasrec-kd", 1): pytest.approx(0.2)}


def test_comparisons_follow_the_recorded_variant_not_the_label():
    models = {"sasrec": "sasrec", "sasrec-kd": "sasrec-kd", "sasrec-kd-shuffled": "sasrec-kd-shuffled",
              "sasrec-kd-projection": "sasrec-kd", "bert4rec-kd": "bert4rec-kd", "my-bert": "bert4rec",
              "bert4rec-kd-side_info_mean": "bert4rec-kd-side_info_mean", "sasrec-llmemb": "sasrec-llmemb",
              "teacher-free": "sasrec-kd-random", "mostpop": "mostpop"}
    variants = {label: variant_of(model, {}) for label, model in models.items()}
    assert method_of("sasrec-kd-shuffled", variants) == "sasrec-kd"
    assert method_of("sasrec-kd-projection", variants) == "sasrec-kd"  # an ablation extends the method's label
    assert method_of("bert4rec-kd-side_info_mean", variants) == "bert4rec-kd"
    assert method_of("teacher-free", variants) == "sasrec-kd"  # a control under any label
    assert method_of("sasrec-kd", variants) is None and method_of("sasrec-llmemb", variants) is None
    no_method = {k: v for k, v in variants.items() if k not in ("sasrec-kd", "sasrec-kd-projection")}
    assert method_of("sasrec-kd-shuffled", no_method) is None
    assert base_of("bert4rec-kd", variants) == "my-bert"  # the backbone's entry, whatever its label
    assert base_of("sasrec-llmemb", variants) == "sasrec" and base_of("sasrec", variants) is None
    assert base_of("mostpop", variants) is None
    assert variants["sasrec-kd-shuffled"].target == "shuffled" and variants["sasrec-llmemb"].method == "llmemb"
    assert variant_of("sasrec-llmemb", {"llmemb_mode": "init"}).method == "textinit"  # how text-init runs are keyed


def test_training_curve_panels_hold_the_backbone_the_method_and_its_setting_ablations():
    runs = [final_run(label, 0, np.full(USERS, 0.1), model) for label, model in
            [("sasrec", None), ("sasrec-kd-no_beta", "sasrec-kd"), ("sasrec-kd", None), ("sasrec-kd-shuffled", None),
             ("bert4rec", None), ("mostpop", None)]]
    assert curve_panels(runs) == [(runs[0].group, ["sasrec", "sasrec-kd", "sasrec-kd-no_beta"])]


def test_a_published_leaderboard_regenerates_byte_identical_from_the_committed_records(tmp_path):
    """What a fresh clone can do without training or importing: the records in results/runs give the
    committed leaderboard, byte for byte; through a tracking store rebuilt from them, the same tables
    (the page then names the store as its source)."""
    from analysis.report import main as report_cli
    from benchmark import paths
    from benchmark.tracking import main as tracking_cli

    files = ("leaderboard-kd-ml1m.md", "leaderboard-kd-ml1m.csv", "leaderboard-kd-ml1m.tex", "manifest-kd-ml1m.csv",
             "comparisons-kd-ml1m-ml-1m-5core.csv")
    assert report_cli(["--suite", "kd-ml1m", "--output", str(tmp_path / "records")]) == 0
    for name in files:
        assert (tmp_path / "records" / name).read_bytes() == (paths.RESULTS_DIR / name).read_bytes(), name
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking_cli(["import", "--suite", "kd-ml1m", "--tracking-uri", uri]) == 0
    assert report_cli(["--suite", "kd-ml1m", "--tracking-uri", uri, "--output", str(tmp_path / "mlflow")]) == 0
    for name in files[1:]:
        assert (tmp_path / "mlflow" / name).read_bytes() == (paths.RESULTS_DIR / name).read_bytes(), name
    page = (tmp_path / "mlflow" / files[0]).read_text()
    assert page.replace("the runs in the MLflow tracking store", "the suite's run records") == \
        (paths.RESULTS_DIR / files[0]).read_text()


def test_a_table_is_tested_against_the_published_claims_on_it(tmp_path):
    from analysis.claims import Claim, claims_lines, load_claims, verdict

    assert {(c.model, c.relative_gain) for c in load_claims()} >= {("sasrec-kd", 0.049), ("bert4rec-kd", 0.196)}
    compared = pd.DataFrame([{"model": "sasrec-kd", "reference": "sasrec", "metric": "ndcg@10", "ci_low": -0.002,
                              "ci_high": -0.0005, "reference_mean": 0.02, "relative_gain": -0.06}])
    claim = Claim(suite="paper", dataset="beauty", model="sasrec-kd", reference="sasrec", metric="ndcg@10",
                  relative_gain=0.049, source="the paper")
    lines = claims_lines((claim,), "paper", "beauty", compared)
    assert "| sasrec-kd vs sasrec | NDCG@10 | +4.9% | -6.0% [-10.0%, -2.5%] | rejected" in "\n".join(lines)
    assert claims_lines((claim,), "paper", "other-dataset", compared) == []
    assert verdict(0.05, 0.0, 0.1) == "consistent" and verdict(-0.1, 0.0, 0.1) == "the observed gain is larger"
    bad = tmp_path / "claims.yaml"
    bad.write_text("- {suite: paper, dataset: x, model: m, reference: r, metric: ndcg@10, relative_gain: high}\n")
    with pytest.raises(ValueError, match="claim 0: relative_gain: Input should be a valid number"):
        load_claims(bad)


def test_a_response_surface_draws_each_point_beside_its_shuffled_twin(tmp_path):
    from analysis.figures import surface_figure, surface_points

    rows = []
    for point in ("sasrec-kd", "sasrec-kd-beta_off", "sasrec-kd-alpha_0.1"):
        for label, gain in ((point, -0.001), (f"{point}-shuffled", -0.002)):
            rows.append({"model": label, "reference": "sasrec", "kind": "base", "metric": "ndcg@10",
                         "mean_difference": gain, "ci_low": gain - 0.0007, "ci_high": gain + 0.0007,
                         "reference_mean": 0.018})
    rows.append({"model": "sasrec-textinit", "reference": "sasrec", "kind": "base", "metric": "ndcg@10",
                 "mean_difference": 0.002, "ci_low": 0.001, "ci_high": 0.003, "reference_mean": 0.018})
    compared = pd.DataFrame(rows)
    assert surface_points(compared) == ["sasrec-kd", "sasrec-kd-beta_off", "sasrec-kd-alpha_0.1"]
    path = surface_figure({("amazon-beauty", "q=0.8"): (pd.DataFrame(), compared)}, tmp_path / "surface.png")
    assert path is not None and path.stat().st_size > 10_000
    one_point = compared[compared["model"].str.startswith("sasrec-kd-beta_off") | (compared["model"] == "sasrec")]
    assert surface_figure({("d", "s"): (pd.DataFrame(), one_point)}, tmp_path / "none.png") is None  # no surface
