"""Paired statistics on per-user test metrics: the numbers behind every comparison in the leaderboard.

Two models evaluated on the same test users give paired observations. For each comparison we report
the mean per-user difference with a bootstrap 95% confidence interval, the effect size (Cohen's d_z:
mean difference over the standard deviation of the differences), the Wilcoxon signed-rank and the
paired t-test p-values, and, across the comparisons of one table, Holm–Bonferroni adjusted p-values.
Seeds are handled by averaging each user's metric over seeds first (the user is the unit); the seed
means get their own paired t-test across seeds. Every comparison also states its power: the minimum
detectable effect (MDE), the smallest true mean difference a two-sided test at alpha = 0.05 detects with
80% power given the spread of the per-user differences actually observed and the number of users
(normal approximation: (z_0.975 + z_0.8) * sd / sqrt(n)). A comparison whose MDE exceeds the effect it
is meant to find cannot confirm or refute that effect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

BOOTSTRAP_RESAMPLES = 5000


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison a - b on the users both cover."""

    users: int
    mean_difference: float
    ci_low: float
    ci_high: float
    effect_size: float
    wilcoxon_p: float
    t_test_p: float
    mde: float

    def as_dict(self) -> dict[str, float]:
        """Plain-data form."""
        return asdict(self)


def mean_ci(values: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of `values`."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    result = stats.bootstrap((values,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=level,
                             method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_comparison(a: pd.Series, b: pd.Series, seed: int = 0) -> PairedResult:
    """Compare per-user metrics `a` and `b` (indexed by user) on their common users."""
    x, y = a.align(b, join="inner")
    differences = (x - y).to_numpy(dtype=float)
    if len(differences) == 0:
        raise ValueError("paired comparison: the two runs share no test user")
    if not differences.any():
        return PairedResult(len(differences), 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0)
    low, high = mean_ci(differences, seed)
    spread = differences.std(ddof=1)
    return PairedResult(
        mde=minimum_detectable_effect(spread, len(differences)),
        users=len(differences), mean_difference=float(differences.mean()), ci_low=low, ci_high=high,
        effect_size=float(differences.mean() / spread) if spread > 0 else float("inf") * np.sign(differences.mean()),
        wilcoxon_p=float(stats.wilcoxon(differences, zero_method="zsplit").pvalue),
        t_test_p=float(stats.ttest_1samp(differences, 0.0).pvalue))


def minimum_detectable_effect(spread: float, users: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference that a two-sided test at `alpha` detects with probability
    `power`, for per-user differences with standard deviation `spread` over `users` users."""
    if users < 2:
        return float("inf")
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * spread / np.sqrt(users))


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error control across one table's comparisons)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def seed_test(a: np.ndarray, b: np.ndarray) -> float:
    """Paired t-test across seeds on the seed-level means (NaN with fewer than two seeds)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(a) != len(b):
        return float("nan")
    if np.allclose(a, b):
        return 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def user_means(per_user: list[pd.Series]) -> pd.Series:
    """Each user's metric averaged over seeds (the unit of the paired tests)."""
    return pd.concat(per_user, axis=1).mean(axis=1)
