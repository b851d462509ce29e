"""Do the profiles carry semantics: the kNN-purity score against known answers, and the command end to
end on ML-100K with canned profiles (real encoder, real UMAP)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.profile_semantics import main as semantics_cli
from analysis.semantics import chance_purity, knn_purity
from benchmark.data.dataset import load_dataset
from benchmark.split import SplitConfig
from tests.conftest import seed_profile_cache


def test_knn_purity_is_one_for_separated_labels_and_chance_for_unrelated_ones():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 10
    labels = np.repeat(np.array(["a", "b", "c"]), [300, 200, 100])
    clustered = centres[np.repeat([0, 1, 2], [300, 200, 100])] + rng.normal(size=(600, 16))
    assert knn_purity(clustered, labels) == 1.0
    expected = (0.5 ** 2 + (1 / 3) ** 2 + (1 / 6) ** 2)
    assert chance_purity(labels) == pytest.approx(expected)
    unrelated = rng.normal(size=(600, 16))
    assert knn_purity(unrelated, labels) == pytest.approx(expected, abs=0.03)


def test_the_command_scores_both_spaces_and_draws_the_figures(mirror, tmp_path):
    cache = tmp_path / "cache"
    split = SplitConfig(quantile=0.9, target="last").apply(load_dataset("ml-100k", data_dir=mirror))
    seed_profile_cache(split, cache)
    output = tmp_path / "results"
    assert semantics_cli(["--dataset", "ml-100k", "--data-dir", str(mirror), "--cache-dir", str(cache),
                          "--quantile", "0.9", "--output", str(output)]) == 0
    report = (output / "profiles-ml-100k.md").read_text()
    rows = re.findall(r"^\| (LLM profiles|side information[^|]*) \| (-?[0-9.]+) \| ([0-9.]+) \|$", report, re.M)
    assert [row[0].split(" (")[0] for row in rows] == ["LLM profiles", "side information"]
    assert all(-1 <= float(silhouette) <= 1 and 0 <= float(purity) <= 1 for _, silhouette, purity in rows)
    for figure in ("profiles-umap-ml-100k.png", "profiles-length-ml-100k.png"):
        assert (output / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_says_when_no_profiles_are_cached(mirror, tmp_path, capsys):
    assert semantics_cli(["--dataset", "ml-100k", "--data-dir", str(mirror), "--cache-dir", str(tmp_path),
                          "--quantile", "0.9"]) == 2
    assert "no cached profiles for ml-100k" in capsys.readouterr().err
