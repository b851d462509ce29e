"""Paired comparison on synthetic per-user metrics where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import paired_comparison as paired


def test_a_true_shift_is_found_and_no_shift_is_not_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    users = pd.RangeIndex(200)
    base = pd.Series(rng.uniform(0, 1, 200), index=users)
    shifted = base + 0.05 + pd.Series(rng.normal(0, 0.05, 200), index=users)
    assert paired(shifted, base).wilcoxon_p < 1e-6
    assert paired(shifted, base).mean_difference > 0.04
    false_alarms = 0
    for trial in range(200):
        noise = np.random.default_rng(trial + 1)
        a = pd.Series(noise.uniform(0, 1, 200), index=users)
        b = pd.Series(noise.uniform(0, 1, 200), index=users)
        false_alarms += paired(a, b).wilcoxon_p < 0.05
    assert false_alarms / 200 < 0.09  # about 5% expected


def test_only_common_users_are_paired_and_identical_series_give_p_one():
    a = pd.Series([0.1, 0.2, 0.3], index=[1, 2, 3])
    b = pd.Series([0.1, 0.2, 0.9], index=[1, 2, 4])
    result = paired(a, b)
    assert result.users == 2 and result.wilcoxon_p == 1.0 and result.mean_difference == 0.0
