"""Statistics on synthetic data where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import holm, mean_ci, paired_comparison, seed_test, user_means


def paired_users(shift: float, users: int, rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    base = rng.uniform(0, 0.3, users)
    noise = rng.normal(0, 0.1, users)
    index = pd.Index(np.arange(users), name="user")
    return pd.Series(base + shift + noise, index), pd.Series(base, index)


def test_a_true_shift_is_found_and_its_interval_covers_it():
    a, b = paired_users(0.03, 400, np.random.default_rng(1))
    result = paired_comparison(a, b)
    assert result.wilcoxon_p < 1e-4 and result.t_test_p < 1e-4
    assert result.ci_low < 0.03 < result.ci_high and result.ci_low > 0
    assert result.effect_size == pytest.approx(0.3, abs=0.1)  # 0.03 / 0.1


def test_no_shift_is_rejected_at_about_the_nominal_rate():
    rng = np.random.default_rng(2)
    trials = 300
    rejected = {"wilcoxon": 0, "t": 0, "ci": 0}
    for _ in range(trials):
        result = paired_comparison(*paired_users(0.0, 60, rng))
        rejected["wilcoxon"] += result.wilcoxon_p < 0.05
        rejected["t"] += result.t_test_p < 0.05
        rejected["ci"] += not result.ci_low <= 0 <= result.ci_high
    for test, count in rejected.items():
        assert 0.02 <= count / trials <= 0.09, (test, count / trials)


def test_holm_matches_the_textbook_procedure():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    # family-wise: with 10 true nulls, Holm rejects anything at most ~5% of the time
    rng = np.random.default_rng(3)
    any_rejection = np.mean([(holm(rng.uniform(size=10)) < 0.05).any() for _ in range(10000)])
    assert 0.04 <= any_rejection <= 0.056  # exactly 1 - 0.995^10 = 0.049 for independent nulls


def test_pairing_uses_common_users_and_identical_runs_have_no_difference():
    a = pd.Series([0.1, 0.2, 0.3], index=[1, 2, 3])
    b = pd.Series([0.0, 0.2, 0.1, 0.9], index=[0, 1, 2, 3])
    assert paired_comparison(a, b).users == 3
    same = paired_comparison(a, a)
    assert same.mean_difference == 0 and same.wilcoxon_p == 1.0
    with pytest.raises(ValueError, match="no test user"):
        paired_comparison(a, pd.Series([0.1], index=[7]))


def test_seed_level_test_and_means():
    assert seed_test([0.30, 0.31, 0.32], [0.20, 0.215, 0.22]) < 0.01
    assert np.isnan(seed_test([0.3], [0.2]))
    assert seed_test([0.3, 0.31], [0.3, 0.31]) == 1.0
    means = user_means([pd.Series([0.0, 1.0], index=[1, 2]), pd.Series([1.0, 1.0], index=[1, 2])])
    assert means.to_dict() == {1: 0.5, 2: 1.0}
    low, high = mean_ci(np.random.default_rng(4).normal(1.0, 0.5, 500))
    assert low < 1.0 < high and high - low < 0.15


def test_minimum_detectable_effect_has_the_stated_power_in_simulation():
    """Paired differences with a true mean equal to the computed MDE are detected (paired t-test, two-sided
    alpha 0.05) in about 80% of simulated samples; half the MDE is detected far less often."""
    from scipy import stats as scipy_stats

    from analysis.stats import minimum_detectable_effect

    rng = np.random.default_rng(0)
    users, spread = 110, 0.2
    mde = minimum_detectable_effect(spread, users)
    detected = {}
    for shift in (mde, mde / 2):
        samples = rng.normal(shift, spread, size=(4000, users))
        detected[shift] = float((scipy_stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05).mean())
    assert abs(detected[mde] - 0.8) < 0.03
    assert detected[mde / 2] < 0.4
    # it shrinks with the square root of the number of users
    assert minimum_detectable_effect(spread, 4 * users) == pytest.approx(mde / 2)
    result = paired_comparison(pd.Series(rng.normal(0.1, 0.2, 500)), pd.Series(np.zeros(500)))
    assert result.mde == pytest.approx(minimum_detectable_effect(result.mean_difference / result.effect_size, 500))
