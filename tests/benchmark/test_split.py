"""Invariants of the global temporal split on random interaction logs (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.split import TARGET_KINDS, VALIDATION_KINDS, SplitConfig, Tasks
from tests.conftest import make_log


@st.composite
def logs(draw):
    """Random logs: few users, small item pool, coarse timestamps (many ties, like day-resolution data)."""
    n_users = draw(st.integers(1, 8))
    rows = []
    for user in range(n_users):
        length = draw(st.integers(1, 12))
        for _ in range(length):
            rows.append((user, draw(st.integers(0, 9)), draw(st.integers(0, 20))))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


configs = st.builds(
    SplitConfig,
    quantile=st.sampled_from([0.3, 0.5, 0.8, 0.9]),
    target=st.sampled_from(TARGET_KINDS),
    validation=st.sampled_from(VALIDATION_KINDS),
    validation_quantile=st.sampled_from([0.5, 0.8]),
    validation_users=st.integers(1, 4),
    min_train_interactions=st.integers(1, 3),
)


def task_rows(log, tasks: Tasks):
    """Yield (user, input rows, target rows) per task."""
    for i in range(len(tasks)):
        user = tasks.user[i]
        inputs = np.arange(log.offsets[user], tasks.input_stop[i])
        targets = tasks.target_rows[tasks.target_offsets[i]:tasks.target_offsets[i + 1]]
        yield user, inputs, targets


@settings(max_examples=300, deadline=None)
@given(frame=logs(), config=configs)
def test_split_invariants(frame, config):
    log = make_log(frame)
    try:
        split = config.apply(log)
    except ValueError as error:
        # The only refusal: no user has enough training history (checked to be true).
        assert "no user" in str(error)
        cutoff = np.quantile(log.timestamp, config.quantile, method="lower")
        counts = np.bincount(log.user[log.timestamp <= cutoff], minlength=log.n_users)
        assert counts.max() < config.min_train_interactions
        return
    ts, T = log.timestamp, split.cutoff
    train = set(split.train_rows.tolist())

    # Train: exactly the rows <= T of users with enough of them.
    for user in range(log.n_users):
        own = np.arange(log.offsets[user], log.offsets[user + 1])
        upto = own[ts[own] <= T]
        expected = set(upto.tolist()) if len(upto) >= config.min_train_interactions else set()
        assert train & set(own.tolist()) == expected
    assert (ts[split.train_rows] <= T).all()

    # Test: targets after T, inputs strictly before the target, users with history on both sides.
    expected_users = {u for u in range(log.n_users)
                      if (ts[log.offsets[u]:log.offsets[u + 1]] <= T).any()
                      and (ts[log.offsets[u]:log.offsets[u + 1]] > T).any()}
    assert set(split.test.user.tolist()) == expected_users
    post_t = set(np.flatnonzero((ts > T) & np.isin(log.user, list(expected_users))).tolist())
    seen_targets: list[int] = []
    for user, inputs, targets in task_rows(log, split.test):
        assert len(targets) >= 1 and (ts[targets] > T).all()
        assert (log.user[targets] == user).all()
        assert len(inputs) >= 1 and inputs.max() < targets.min()
        if config.target in ("first", "all"):
            assert (ts[inputs] <= T).all()
        seen_targets.extend(targets.tolist())
    if config.target in ("successive", "all"):
        assert sorted(seen_targets) == sorted(post_t)
    else:
        assert len(seen_targets) == len(expected_users) == len(set(seen_targets))

    # Validation: carved out of train; its targets never in the rows the model is fitted on.
    fit = set(split.validation.train_rows.tolist())
    assert fit <= train
    for _user, inputs, targets in task_rows(log, split.validation.tasks):
        assert set(targets.tolist()) <= train
        assert not set(targets.tolist()) & fit
        assert set(inputs.tolist()) <= train and inputs.max() < targets.min()
        if config.validation == "by_time":
            assert (ts[targets] > split.validation.cutoff).all()
    if config.validation == "by_time":
        assert (ts[split.validation.train_rows] <= split.validation.cutoff).all()

    # Training-period histories (what profiles are built from) contain nothing after T.
    histories = split.training_histories()
    assert (histories["timestamp"] <= T).all()
    assert len(histories) == int((ts <= T).sum())


def test_inputs_are_left_padded_and_end_before_target():
    frame = pd.DataFrame({"user": [0] * 5, "item": [1, 2, 3, 4, 5], "timestamp": [1, 2, 3, 4, 5]})
    log = make_log(frame)
    split = SplitConfig(quantile=0.5, target="successive").apply(log)
    assert split.inputs(split.test, max_len=4).tolist() == [[0, 1, 2, 3], [1, 2, 3, 4]]
    assert split.inputs(split.test, max_len=2).tolist() == [[2, 3], [3, 4]]


def test_amazon_style_ties_keep_file_order():
    # Same day for all events: the file order is the sequence order and must survive.
    frame = pd.DataFrame({"user": [7, 7, 7], "item": ["z", "a", "m"], "timestamp": [5, 5, 5]})
    log = make_log(frame)
    assert log.item_ids[log.item - 1].tolist() == ["z", "a", "m"]


def test_report_counts_cold_items_and_ties():
    frame = pd.DataFrame({"user": [0, 0, 1, 1, 1], "item": [1, 2, 1, 2, 9], "timestamp": [1, 2, 2, 2, 3]})
    split = SplitConfig(quantile=0.6, target="first", validation="last_train_item").apply(make_log(frame))
    report = split.report()
    assert split.cutoff == 2
    assert report["interactions_at_cutoff"] == 3
    assert report["test_tasks"] == 1 and report["test_cold_item_targets"] == 1


def test_bad_split_settings_are_named():
    with pytest.raises(ValueError, match="quantile"):
        SplitConfig(quantile=1.5)
    with pytest.raises(ValueError, match="target"):
        SplitConfig(target="middle")


def test_validation_fraction_holds_out_that_share_of_training_users():
    log = make_log(pd.DataFrame({"user": np.repeat(np.arange(50), 4), "item": np.tile(np.arange(4), 50),
                                 "timestamp": np.arange(200)}))
    split = SplitConfig(quantile=0.9, validation="by_user", validation_fraction=0.2).apply(log)
    train_users = np.unique(log.user[split.train_rows])
    held_out = np.setdiff1d(train_users, np.unique(log.user[split.validation.train_rows]))
    assert len(held_out) == int(len(train_users) * 0.2) == len(split.validation.tasks)
    # unset, it is absent from the plain form, so run keys of earlier splits do not change
    assert "validation_fraction" not in SplitConfig().as_dict()
    assert SplitConfig(validation_fraction=0.2).as_dict()["validation_fraction"] == 0.2
    with pytest.raises(ValueError, match="validation_fraction"):
        SplitConfig(validation_fraction=1.5)
