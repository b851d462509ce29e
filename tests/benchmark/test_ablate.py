"""`python -m benchmark.ablate`: the control entries and the paired comparison, reusing the method's runs."""

from __future__ import annotations

import pytest

from benchmark.ablate import control_entry
from benchmark.ablate import main as ablate_cli
from benchmark.errors import DataError
from benchmark.suite import ModelEntry
from tests.benchmark.workspace import records, workspace


def test_control_entries():
    method = ModelEntry(name="sasrec-kd", params={"max_epochs": 30, "alpha": 0.3})
    side_info = control_entry(method, "side_info")
    assert (side_info.name, side_info.display, side_info.params) == ("sasrec-kd", "sasrec-kd-side_info",
                                                                     {"target": "side_info"})
    assert control_entry(method, "no_finetune").params == {"distil_epochs": 30}
    assert control_entry(method, "no_beta").params == {"use_beta": False}
    layer = control_entry(method, "layer", 2)
    assert layer.params == {"layer": 2} and layer.label == "sasrec-kd-layer=2" and layer.params_from == "sasrec-kd"
    with pytest.raises(DataError, match="choose one of"):
        control_entry(method, "colour")
    with pytest.raises(DataError, match="model distilled from LLM profiles"):
        control_entry(ModelEntry(name="sasrec"), "side_info")


def test_ablation_reuses_the_method_and_prints_the_paired_comparison(tmp_path, profile_cache, capsys):
    _, args = workspace(tmp_path, profile_cache, name="ablated", trials=2)
    assert ablate_cli(["--control", "no_beta", "--method", "sasrec-kd", *args]) == 0
    output = capsys.readouterr().out
    assert "sasrec-kd vs sasrec-kd-no_beta" in output and "randomization_p" in output
    runs = {(r.label, r.seed): r for r in records(tmp_path / "runs")}
    assert set(runs) == {(label, seed) for label in ("sasrec-kd", "sasrec-kd-no_beta") for seed in (0, 1)}
    method, control = runs["sasrec-kd", 0].spec.params, runs["sasrec-kd-no_beta", 0].spec.params
    assert method["use_beta"] and not control["use_beta"]
    assert {k: v for k, v in method.items() if k != "use_beta"} == {k: v for k, v in control.items() if k != "use_beta"}
