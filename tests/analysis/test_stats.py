"""Statistics on synthetic data where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.stats import (
    equivalence_p,
    holm,
    mean_ci,
    minimum_detectable_effect,
    paired_comparison,
    randomization_p,
    reversed_verdict,
    seed_test,
    user_means,
    verdict,
)


def paired_users(shift: float, users: int, rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    base = rng.uniform(0, 0.3, users)
    noise = rng.normal(0, 0.1, users)
    index = pd.Index(np.arange(users), name="user")
    return pd.Series(base + shift + noise, index), pd.Series(base, index)


def sparse_ndcg(shift: float, users: int, rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    """(model, reference) per-user NDCG as a leaderboard sees it: a user hits (NDCG 1/log2(rank + 1), rank
    1-10) with probability 0.2, else scores 0; the model differs from the reference for a fifth of the users
    only, by an independent fresh draw, plus `shift` / 0.2 there, so the true mean difference is `shift`
    and most per-user differences are exactly 0."""
    def draw() -> np.ndarray:
        return np.where(rng.random(users) < 0.2, 1 / np.log2(rng.integers(2, 12, users)), 0.0)

    reference = draw()
    changed = rng.random(users) < 0.2
    model = np.where(changed, draw() + shift / 0.2, reference)
    return pd.Series(model), pd.Series(reference)


def test_a_true_shift_is_found_and_its_interval_covers_it():
    a, b = paired_users(0.03, 400, np.random.default_rng(1))
    result = paired_comparison(a, b)
    assert result.randomization_p < 1e-4 and result.t_test_p < 1e-4
    assert result.ci_low < 0.03 < result.ci_high and result.ci_low > 0
    assert result.effect_size == pytest.approx(0.3, abs=0.1)  # 0.03 / 0.1


def test_the_randomization_test_agrees_with_scipys_permutation_test():
    rng = np.random.default_rng(5)
    few = np.r_[rng.normal(0.05, 0.2, 12), np.zeros(40)]  # 2^12 flips: enumerated exactly by both
    exact = scipy_stats.permutation_test((few[few != 0],), np.mean, permutation_type="samples").pvalue
    assert randomization_p(few) == pytest.approx(exact, rel=1e-9)
    many = rng.normal(0.02, 0.3, 300)  # Monte Carlo: within a few standard errors of each other
    theirs = scipy_stats.permutation_test((many,), np.mean, permutation_type="samples", n_resamples=20000,
                                          vectorized=True, random_state=np.random.default_rng(1)).pvalue
    assert abs(randomization_p(many, resamples=20000) - theirs) < 4 * np.sqrt(theirs * (1 - theirs) / 20000) * 1.5
    assert randomization_p(np.zeros(10)) == 1.0
    assert randomization_p(np.r_[np.full(30, 0.1), np.zeros(500)]) < 1e-4  # 30 users, all better: p = 2^-29


def test_the_fast_kernels_draw_what_scipy_and_a_direct_draw_would():
    """The bootstrap uses scipy.stats.bootstrap's resamples (its means summed in another order: equal to
    the last bits); the randomization test's shared flip stream gives the p-value of drawing the flips
    per test, for tests of different lengths and seeds in any order."""
    rng = np.random.default_rng(8)
    for users in (40, 3000, 40):
        values = np.where(rng.random(users) < 0.3, rng.random(users), 0.0)
        theirs = scipy_stats.bootstrap((values,), np.mean, n_resamples=5000, method="percentile", vectorized=True,
                                       random_state=np.random.default_rng(0)).confidence_interval
        assert mean_ci(values) == pytest.approx((theirs.low, theirs.high), rel=1e-12, abs=1e-15)

    def drawn(differences: np.ndarray, resamples: int, seed: int) -> float:
        flips = np.random.default_rng(seed).random((resamples, len(differences))) < 0.5
        sums = np.where(flips, -differences, differences).sum(axis=1)
        return (1 + np.count_nonzero(np.abs(sums) >= abs(differences.sum()) - 1e-9 * np.abs(differences).sum())) / (
            1 + resamples)

    for length, seed in ((300, 0), (37, 0), (301, 1), (1000, 1), (13, 1)):  # 2^13 > 3000: drawn, not enumerated
        differences = np.round(rng.normal(0.01, 0.2, length), 2)  # rounded: many exact ties with the observed sum
        differences = differences[differences != 0]  # zeros are not flipped (drawing for them would shift the stream)
        assert randomization_p(differences, resamples=3000, seed=seed) == drawn(differences, 3000, seed)


def test_the_primary_test_holds_its_level_on_sparse_per_user_ndcg():
    """With no true difference and ~93% of the per-user differences exactly 0, "no difference" is rejected
    at about the nominal 5% and at most 6% of the time."""
    rng = np.random.default_rng(2)
    tables = 2000
    rejected = sum(randomization_p((m - r).to_numpy(), resamples=2000, seed=i) < 0.05
                   for i, (m, r) in enumerate(sparse_ndcg(0.0, 1000, rng) for _ in range(tables)))
    assert 0.035 <= rejected / tables <= 0.06


def test_the_primary_test_has_the_power_the_mde_column_states():
    """A true shift equal to the MDE that the report prints is detected in about 80% of tables."""
    rng = np.random.default_rng(3)
    pilot = [paired_comparison(*sparse_ndcg(0.01, 1000, rng), resamples=1000) for _ in range(50)]
    mde = float(np.median([p.mde for p in pilot]))
    detected = [randomization_p((m - r).to_numpy(), resamples=2000, seed=i) < 0.05
                for i, (m, r) in enumerate(sparse_ndcg(mde, 1000, rng) for _ in range(600))]
    assert abs(np.mean(detected) - 0.8) < 0.06
    half = [randomization_p((m - r).to_numpy(), resamples=2000, seed=i) < 0.05
            for i, (m, r) in enumerate(sparse_ndcg(mde / 2, 1000, rng) for _ in range(300))]
    assert np.mean(half) < 0.4


def test_a_bootstrap_interval_that_excludes_zero_goes_with_a_primary_p_below_alpha():
    """Over tables with shifts from none to well beyond the MDE, either way, the 95% CI excludes 0 exactly when
    the unadjusted randomization p < 0.05, on at least 95% of them (the Wilcoxon signed-rank test with split
    zeros, which this replaced, disagreed on most shifted tables of this kind)."""
    rng = np.random.default_rng(4)
    agree = []
    for _ in range(200):
        shift = rng.uniform(-0.03, 0.03)
        result = paired_comparison(*sparse_ndcg(shift, 500, rng), resamples=5000)
        agree.append((not result.ci_low <= 0 <= result.ci_high) == (result.randomization_p < 0.05))
    assert np.mean(agree) >= 0.95


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    rng = np.random.default_rng(6)
    close = rng.normal(0.001, 0.05, 5000)  # mean ~0.001, standard error ~0.0007
    assert equivalence_p(close, 0.005) < 0.001
    assert equivalence_p(close, 0.0005) > 0.5
    assert equivalence_p(rng.normal(0.0, 0.05, 30), 0.005) > 0.05  # too few users to show anything
    assert equivalence_p(np.zeros(10), 0.01) == 0.0 and equivalence_p(np.zeros(10), 0.0) == 1.0
    # at a true difference exactly on the margin, TOST claims equivalence at most ~5% of the time
    claimed = np.mean([equivalence_p(rng.normal(0.01, 0.2, 400), 0.01) < 0.05 for _ in range(1000)])
    assert claimed <= 0.06
    result = paired_comparison(pd.Series(close + 0.2), pd.Series(np.full(5000, 0.2)), relative_margin=0.05)
    assert result.margin == pytest.approx(0.01) and result.equivalence_p < 1e-6


def test_verdicts_say_only_what_the_tests_say():
    assert verdict(+0.01, 0.001, 0.9) == "better" and verdict(-0.01, 0.001, 0.001) == "worse"
    assert verdict(0.001, 0.3, 0.01) == "equivalent" and verdict(0.001, 0.3, 0.2) == "inconclusive"
    assert [reversed_verdict(v) for v in ("better", "worse", "equivalent")] == ["worse", "better", "equivalent"]


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
    same = paired_comparison(a, a, relative_margin=0.05)
    assert same.mean_difference == 0 and same.randomization_p == 1.0 and same.equivalence_p == 0.0
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
