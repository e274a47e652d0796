"""reports.stats: histogram quantiles, slopes and moving-block bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.evidence import exact_quantiles
from reports.stats import (
    PooledHistogram,
    PooledQuantile,
    PooledRatio,
    PooledSlope,
    block_weights,
    bootstrap_difference,
    bootstrap_ratio,
    default_block,
    fit_slope,
    histogram_quantile,
    histogram_quantiles,
    whole,
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


def _per_second(values: np.ndarray) -> PooledQuantile:
    """One value per second: the pooled median is the median of the values."""
    return PooledQuantile(values, np.arange(values.size), values.size, 0.5)


def test_bootstrap_detects_a_real_2x_difference() -> None:
    a = _ar1(120, 100.0, 10.0, seed=1)
    b = _ar1(120, 200.0, 20.0, seed=2)
    found = bootstrap_ratio(_per_second(a), _per_second(b))
    assert found.point == pytest.approx(2.0, rel=0.1)
    assert found.low > 1.0
    assert found.low <= found.point <= found.high


def test_bootstrap_does_not_flag_the_same_distribution() -> None:
    a = _ar1(120, 100.0, 10.0, seed=3)
    b = _ar1(120, 100.0, 10.0, seed=4)
    found = bootstrap_ratio(_per_second(a), _per_second(b))
    assert found.low <= 1.0 <= found.high
    assert not found.excludes(1.0)
    assert found.point == pytest.approx(1.0, abs=0.1)


def test_bootstrap_is_deterministic_given_the_seed() -> None:
    a = _per_second(_ar1(60, 100.0, 10.0, seed=5))
    b = _per_second(_ar1(60, 110.0, 10.0, seed=6))
    first = bootstrap_ratio(a, b, n_boot=500, seed=7)
    assert bootstrap_ratio(a, b, n_boot=500, seed=7) == first
    assert bootstrap_ratio(a, b, n_boot=500, seed=8) != first


def test_bootstrap_of_a_ratio_of_sums_and_an_undefined_ratio() -> None:
    # rows (requests, failures): statistic = error rate
    a = PooledRatio(np.full(50, 10.0), np.full(50, 100.0))
    b = PooledRatio(np.full(50, 1.0), np.full(50, 100.0))
    found = bootstrap_ratio(a, b, n_boot=200, block=5)
    assert (found.point, found.low, found.high) == pytest.approx((0.1, 0.1, 0.1))
    zero = PooledRatio(np.zeros(50), np.full(50, 100.0))
    undefined = bootstrap_ratio(zero, b, n_boot=50)
    assert math.isnan(undefined.point) and not undefined.defined
    assert not undefined.excludes(1.0)


def test_a_point_from_another_file_scales_the_resamples() -> None:
    a = PooledRatio(_ar1(60, 100.0, 10.0, seed=13), np.ones(60))
    b = PooledRatio(_ar1(60, 100.0, 10.0, seed=14), np.ones(60))
    own = bootstrap_ratio(a, b, seed=1)
    scaled = bootstrap_ratio(a, b, point=1.1 * own.point, seed=1)
    assert scaled.point == pytest.approx(1.1 * own.point)
    assert (scaled.low, scaled.high) == pytest.approx((1.1 * own.low, 1.1 * own.high))
    assert not bootstrap_ratio(a, b, point=0.0).defined  # the pieces say otherwise


def test_slope_difference_bootstrap() -> None:
    x = np.arange(80.0)
    leak = PooledSlope(x, 2.0 * x + _ar1(80, 0.0, 3.0, seed=10))
    flat = PooledSlope(x, _ar1(80, 50.0, 3.0, seed=11))
    assert whole(leak) == pytest.approx(fit_slope(leak.x, leak.y))
    found = bootstrap_difference(leak, flat)
    assert found.point == pytest.approx(whole(flat) - whole(leak))
    assert found.high < 0 and found.excludes(0.0)
    same = bootstrap_difference(flat, PooledSlope(x, _ar1(80, 50.0, 3.0, seed=12)))
    assert same.low <= 0.0 <= same.high
    assert not same.excludes(0.0)
    assert bootstrap_difference(leak, flat) == found


def test_block_weights_draw_whole_blocks() -> None:
    rng = np.random.default_rng(0)
    w = block_weights(12, 3, 200, rng)
    assert w.shape == (200, 12)
    assert (w.sum(axis=1) == 12).all()
    assert w.min() >= 0 and (w == w.astype(int)).all()
    # Blocks of 3 (4 of them, none cut short): never a lone draw of piece 5.
    lone = (w[:, 5] > 0) & (w[:, 4] == 0) & (w[:, 6] == 0)
    assert not lone.any()
    assert (block_weights(10, 3, 50, rng).sum(axis=1) == 10).all()  # the last block cut


@pytest.mark.parametrize("seed", range(20))
def test_pooled_quantile_is_the_exact_quantile_of_the_drawn_requests(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    values = np.round(rng.lognormal(3.0, 1.0, size=int(rng.integers(1, 400))), 1)  # ties too
    piece = rng.integers(0, n, size=values.size)
    for q in (0.5, 0.95, 0.99, float(rng.random())):
        pooled = PooledQuantile(values, piece, n, q)
        assert whole(pooled) == exact_quantiles(values, [q])[0]  # exactly the summary's
        weights = rng.integers(0, 3, size=(5, n)).astype(float)
        got = pooled.statistic(weights)
        for row, value in zip(weights, got, strict=True):
            drawn = np.repeat(values, row[piece].astype(int))
            if drawn.size == 0:
                assert math.isnan(value)
            else:
                assert value == exact_quantiles(drawn, [q])[0]


def _random_histogram(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations, the `le` bounds, and the cumulative counts of their histogram."""
    le = np.array([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, INF])
    observed = rng.lognormal(-3.0, 1.5, size=int(rng.integers(1, 300)))
    cumulative = np.array([(observed <= b).sum() for b in le], dtype=float)
    return observed, le, cumulative


@pytest.mark.parametrize("seed", range(30))
def test_histogram_quantiles_agree_with_prometheus_and_bound_the_exact_quantile(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    observed, le, cumulative = _random_histogram(rng)
    for q in (0.5, 0.95, 0.99):
        pairs = list(zip(le, cumulative, strict=True))
        (guess,) = histogram_quantiles(q, le, cumulative[None, :])
        assert guess == histogram_quantile(q, pairs)
        (upper,) = histogram_quantiles(q, le, cumulative[None, :], "upper")
        (lower,) = histogram_quantiles(q, le, cumulative[None, :], "lower")
        exact = exact_quantiles(observed, [q])[0]
        assert lower < exact <= upper
        assert upper in le and (lower == 0 or lower in le)
    assert math.isnan(histogram_quantiles(0.5, le, np.zeros((1, le.size)))[0])


def test_pooled_histogram_sums_the_drawn_buckets() -> None:
    le = np.array([0.1, 0.5, INF])
    # Two seconds: 10 fast requests, then 10 slow ones.
    counts = np.array([[10.0, 10.0, 10.0], [0.0, 10.0, 10.0]])
    upper = PooledHistogram(le, counts, 0.95, "upper")
    assert whole(upper) == 0.5
    assert list(upper.statistic(np.array([[2.0, 0.0], [0.0, 2.0]]))) == [0.1, 0.5]
