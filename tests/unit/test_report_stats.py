"""reports.stats: histogram quantiles, slopes and moving-block bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.stats import (
    block_bootstrap_ci,
    block_bootstrap_slope,
    block_bootstrap_slope_diff,
    default_block,
    fit_slope,
    histogram_quantile,
)

pytestmark = pytest.mark.unit

INF = math.inf
# 10 observations <= 0.1, 20 in (0.1, 0.2], 10 in (0.2, 0.5], none above.
BUCKETS = [(0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (INF, 40.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.25, 0.1),  # rank 10: top of the first bucket
        (0.5, 0.15),  # rank 20: half-way through (0.1, 0.2]
        (0.9, 0.38),  # rank 36: 6/10 of (0.2, 0.5]
        (0.0, 0.0),
        (1.0, 0.5),
    ],
)
def test_histogram_quantile_interpolates_inside_the_bucket(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_histogram_quantile_order_of_buckets_does_not_matter() -> None:
    assert histogram_quantile(0.5, list(reversed(BUCKETS))) == pytest.approx(0.15)


def test_histogram_quantile_rank_in_inf_bucket_returns_highest_finite_bound() -> None:
    assert histogram_quantile(0.9, [(0.1, 5.0), (0.25, 6.0), (INF, 10.0)]) == 0.25


def test_histogram_quantile_nan_cases() -> None:
    assert histogram_quantile(0.5, [(0.1, 5.0), (0.2, 10.0)]) is None  # no +Inf bucket
    assert histogram_quantile(0.5, [(INF, 10.0)]) is None  # a single bucket
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None  # no observations
    assert histogram_quantile(math.nan, BUCKETS) is None
    assert histogram_quantile(-0.1, BUCKETS) == -INF
    assert histogram_quantile(1.1, BUCKETS) == INF


def test_histogram_quantile_fixes_non_monotonic_counts() -> None:
    # a count lower than the bucket below it is raised to it (Prometheus does the same)
    assert histogram_quantile(0.5, [(0.1, 10.0), (0.2, 8.0), (0.5, 20.0), (INF, 20.0)]) == (
        pytest.approx(0.1)
    )


def test_fit_slope_is_exact_on_a_line() -> None:
    x = np.arange(10.0)
    assert fit_slope(x, 3.0 * x + 2.0) == pytest.approx(3.0)
    assert fit_slope([0, 1, 2, 3], [1, 1, 1, 1]) == pytest.approx(0.0)


def test_fit_slope_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError):
        fit_slope([1.0], [2.0])
    with pytest.raises(ValueError):
        fit_slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        fit_slope([1.0, 2.0], [1.0])


def test_default_block() -> None:
    assert default_block(1) == 1
    assert default_block(100) == 10
    assert default_block(0) == 1


def _ar1(n: int, mean: float, sd: float, seed: int, phi: float = 0.5) -> np.ndarray:
    """Autocorrelated samples, like per-second latencies."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sd, size=n)
    out = np.empty(n)
    prev = 0.0
    for i in range(n):
        prev = phi * prev + e[i]
        out[i] = mean + prev
    return out


def test_bootstrap_detects_a_real_2x_difference() -> None:
    a = _ar1(120, 100.0, 10.0, seed=1)
    b = _ar1(120, 200.0, 20.0, seed=2)
    ratio, low, high = block_bootstrap_ci(a, b, np.median)
    assert ratio == pytest.approx(2.0, rel=0.1)
    assert low > 1.0
    assert low <= ratio <= high


def test_bootstrap_does_not_flag_the_same_distribution() -> None:
    a = _ar1(120, 100.0, 10.0, seed=3)
    b = _ar1(120, 100.0, 10.0, seed=4)
    ratio, low, high = block_bootstrap_ci(a, b, np.median)
    assert low <= 1.0 <= high
    assert ratio == pytest.approx(1.0, abs=0.1)


def test_bootstrap_is_deterministic_given_the_seed() -> None:
    a = _ar1(60, 100.0, 10.0, seed=5)
    b = _ar1(60, 110.0, 10.0, seed=6)
    first = block_bootstrap_ci(a, b, np.mean, n_boot=500, seed=7)
    assert block_bootstrap_ci(a, b, np.mean, n_boot=500, seed=7) == first
    assert block_bootstrap_ci(a, b, np.mean, n_boot=500, seed=8) != first


def test_bootstrap_with_rows_and_undefined_ratio() -> None:
    # rows (requests, failures): statistic = error rate
    def rate(x: np.ndarray) -> float:
        return float(x[:, 1].sum() / x[:, 0].sum())

    a = np.column_stack([np.full(50, 100.0), np.full(50, 10.0)])
    b = np.column_stack([np.full(50, 100.0), np.full(50, 1.0)])
    ratio, low, high = block_bootstrap_ci(a, b, rate, n_boot=200, block=5)
    assert ratio == pytest.approx(0.1)
    assert low == pytest.approx(0.1)
    assert high == pytest.approx(0.1)
    zero = np.column_stack([np.full(50, 100.0), np.zeros(50)])
    ratio, low, high = block_bootstrap_ci(zero, b, rate, n_boot=50)
    assert math.isnan(ratio) and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        block_bootstrap_ci([], [1.0], np.mean)


def test_slope_bootstrap_ci_covers_the_true_slope() -> None:
    x = np.arange(100.0)
    y = 2.0 * x + _ar1(100, 0.0, 3.0, seed=9)
    slope, low, high = block_bootstrap_slope(x, y)
    assert slope == pytest.approx(2.0, rel=0.05)
    assert low < 2.0 < high


def test_slope_difference_bootstrap() -> None:
    x = np.arange(80.0)
    leak = 2.0 * x + _ar1(80, 0.0, 3.0, seed=10)
    flat = _ar1(80, 50.0, 3.0, seed=11)
    res = block_bootstrap_slope_diff(x, leak, x, flat)
    assert res.slope_a == pytest.approx(2.0, rel=0.05)
    assert res.diff == pytest.approx(res.slope_b - res.slope_a)
    assert res.diff_high < 0
    assert res.significant
    same = block_bootstrap_slope_diff(x, flat, x, _ar1(80, 50.0, 3.0, seed=12))
    assert same.diff_low <= 0.0 <= same.diff_high
    assert not same.significant
    again = block_bootstrap_slope_diff(x, leak, x, flat)
    assert again == res
