"""The registry's names: suites name variants by parameter (historical names still work), published
records keep their keys, and split labels say everything. (The import layers: tests/test_layers.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.records import read_records, variant_of
from benchmark.split import SplitConfig
from benchmark.studies import study_name
from benchmark.suite import ModelEntry, Suite

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry,name,label,params", [
    ({"name": "sasrec-kd-shuffled"}, "sasrec-kd", "sasrec-kd-shuffled", {"target": "shuffled"}),
    ({"name": "bert4rec-kd-oracle", "label": "upper"}, "bert4rec-kd", "upper", {"target": "oracle"}),
    ({"name": "sasrec-llmemb"}, "sasrec-llmemb", "sasrec-llmemb", {}),  # LLMEmb itself now
    ({"name": "sasrec-kd", "target": "random"}, "sasrec-kd", "sasrec-kd-random", {"target": "random"}),
    ({"name": "sasrec-kd", "target": "llm"}, "sasrec-kd", "sasrec-kd", {"target": "llm"}),
])
def test_variants_are_parameters_and_historical_names_still_work(entry, name, label, params):
    model = ModelEntry.model_validate(entry)
    assert (model.name, model.display, model.params) == (name, label, params)


def test_an_unknown_target_names_the_valid_ones():
    with pytest.raises(ValueError, match="target must be one of llm, shuffled, random, side_info"):
        ModelEntry.model_validate({"name": "sasrec-kd", "target": "teacher"})


def test_published_records_keep_their_keys_and_say_what_they_are():
    """Every committed record's key is the hash of its configuration (so a dry run finds it done), and its
    model name resolves to a variant of the registry."""
    records = [record for folder in (ROOT / "results" / "runs").iterdir() for _, record in read_records(folder)]
    assert len(records) > 100
    variants = {record.spec.model: record.variant for record in records}
    assert variants["sasrec-kd-shuffled"] == variant_of("sasrec-kd", {"target": "shuffled"})
    assert variants["sasrec-llmemb"].method == "textinit" and variants["mostpop"].method is None  # llmemb_mode


def test_splits_that_differ_in_any_field_never_share_a_study():
    base = SplitConfig(quantile=0.9, target="last")
    names = {study_name("s", "d", SplitConfig(quantile=0.9, target="last", **change), "sasrec")
             for change in ({}, {"seed": 1}, {"validation_users": 512}, {"min_train_interactions": 3},
                            {"validation_quantile": 0.8})}
    assert len(names) == 5
    assert study_name("s", "d", base, "sasrec").startswith("s/d/q0.9-last-by_time/sasrec@")  # unchanged spelling


def test_a_suite_mixing_spellings_keeps_labels_unique():
    with pytest.raises(ValueError, match="labels must be unique"):
        Suite.model_validate({"name": "x", "datasets": [{"name": "ml-100k"}],
                              "models": [{"name": "sasrec-kd-random"}, {"name": "sasrec-kd", "target": "random"}]})
