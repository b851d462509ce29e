"""Prompts show only training-period history (never a validation target or a later item), render item fields in order, and name a template's bad key."""

from __future__ import annotations

import pytest

from benchmark.data.dataset import load_dataset
from benchmark.errors import DataError
from benchmark.profiles.prompts import PromptConfig, build_prompts, load_templates
from benchmark.split import SplitConfig
from tests.benchmark.profiles.fakes import movie_log


def test_nothing_after_the_cutoff_reaches_a_prompt():
    log, split = movie_log()
    assert (log.timestamp > split.cutoff).any()
    for config in (PromptConfig(), PromptConfig(history="train"), PromptConfig(max_items=3), PromptConfig(chunk_size=2)):
        prompts = build_prompts(split, config)
        assert prompts
        for prompt in prompts:
            for chunk in prompt.chunks:
                assert "FUTURE" not in chunk[-1]["content"]


def test_real_dataset_prompts_hold_only_training_history(mirror):
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig(quantile=0.8).apply(log)
    histories = split.training_histories()
    lengths = histories.groupby("user").size()
    prompts = build_prompts(split, PromptConfig(max_items=30, history="train"))
    assert [p.user for p in prompts] == list(lengths.index)
    for prompt in prompts[:50]:
        content = prompt.chunks[0][-1]["content"]
        assert content.count("\n- ") == min(30, lengths[prompt.user])
        last_item = histories[histories["user"] == prompt.user]["item"].iloc[-1]
        assert log.item_text.loc[last_item, "title"] in content


def test_fit_history_never_shows_a_validation_target(mirror):
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig(quantile=0.9, validation="last_train_item").apply(log)
    prompts = {p.user: p.chunks[0][-1]["content"] for p in build_prompts(split, PromptConfig(max_items=1000))}
    tasks = split.validation.tasks
    checked = 0
    for user, target_row in zip(tasks.user[:100], tasks.target_rows[:100], strict=True):
        title = log.item_text.loc[log.item[target_row], "title"]
        user_items = set(log.item[log.offsets[user]:target_row])
        if log.item[target_row] not in user_items and user in prompts:
            assert f"- {title} (" not in prompts[user]
            checked += 1
    assert checked > 50


def test_item_lines_render_available_fields_in_order(mirror):
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig().apply(log)
    content = build_prompts(split, PromptConfig(history="train", max_items=1000))[0].chunks[0][-1]["content"]
    assert "- Four Rooms (1995); Thriller; rated 4/5" in content
    assert content.startswith("A user watched these movies, oldest first:")


def test_chunks_and_recent_items():
    _, split = movie_log()
    prompt = build_prompts(split, PromptConfig(max_items=4, chunk_size=3))[0]
    assert prompt.n_items == 4 and [c[-1]["content"].count("\n- ") for c in prompt.chunks] == [3, 1]


def test_template_errors_name_the_key(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("movies: {system: s, item_fields: [title], short: no placeholder, long: '{history}', "
                   "aggregate: '{history}'}\n")
    with pytest.raises(DataError, match="movies.short lacks the {history} placeholder"):
        load_templates(bad)


def test_whole_history_prompts_show_every_training_item():
    _, split = movie_log()
    whole = {p.user: p.n_items for p in build_prompts(split, PromptConfig(max_items=None, history="train"))}
    lengths = split.histories("train").groupby("user").size().to_dict()
    assert whole == lengths and max(whole.values()) > 3
    with pytest.raises(ValueError, match="max_items"):
        PromptConfig(max_items=0)
