"""The comparison's confidence intervals: of the statistic the row reports, holding
its point, and covering a known ratio about 95% of the time.

Synthetic runs whose after/before ratio is known by construction: the after run
is the before process with every response time multiplied by K, so every
percentile of it is K times the before one's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from reports import compare_runs
from reports.stats import (
    Interval,
    Pieces,
    PooledHistogram,
    PooledQuantile,
    PooledRatio,
    PooledSlope,
    block_weights,
    bootstrap_difference,
    bootstrap_ratio,
    whole,
)
from tests.unit.test_report_build import T0, make_run

pytestmark = pytest.mark.unit

K = 0.5  # the true after / before ratio of every percentile
SECONDS = 60


def _latencies(
    rng: np.random.Generator,
    scale: float,
    *,
    seconds: int = SECONDS,
    per_second: float = 40.0,
    phi: float = 0.3,
    level_sd: float = 0.1,
    spread: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(ms, second) of a run: lognormal response times around a level that drifts from
    second to second (AR(1): a slow second is followed by a slowish one).

    phi = 0.3 and a level of sd ~0.1 (log scale) are twice the per-second
    variation of this lab's runs (the two memory-leak runs in runs/: sd 0.04-0.05,
    lag-1 autocorrelation -0.6 to 0.3): autocorrelated enough that an i.i.d.
    bootstrap would be over-confident.
    """  # fmt: skip
    level = np.empty(seconds)
    prev = rng.normal(0.0, level_sd / np.sqrt(1 - phi**2))  # stationary from the start
    for t in range(seconds):
        prev = phi * prev + rng.normal(0.0, level_sd)
        level[t] = prev
    second = np.repeat(np.arange(seconds), rng.poisson(per_second, seconds))
    ms = scale * np.exp(3.0 + level[second] + rng.normal(0.0, spread, second.size))
    return ms, second


def _quantile_pair(seed: int, q: float) -> tuple[PooledQuantile, PooledQuantile]:
    rng = np.random.default_rng(seed)
    (ms_a, s_a), (ms_b, s_b) = _latencies(rng, 1.0), _latencies(rng, K)
    return PooledQuantile(ms_a, s_a, SECONDS, q), PooledQuantile(ms_b, s_b, SECONDS, q)


def _inside(found: Interval) -> bool:
    return found.defined and found.low <= found.point <= found.high


def test_the_ci_covers_the_true_ratio_about_95_percent_of_the_time() -> None:
    """200 seeded trials of the p95 ratio of two 60 s runs: the share of CIs that hold
    the true ratio K.

    The band: at a true coverage of 0.95, the share over n = 200 independent
    trials has a binomial sd of sqrt(0.95 * 0.05 / 200) = 0.015, so [0.90, 0.99]
    is about 3 sd either side of 0.95 (2.7 above). Measured: 0.94 (0.925 without the
    stretch of `reports.stats._stretch`). A block bootstrap of one minute
    under-covers when the seconds are strongly autocorrelated (~8 blocks per
    resample; the dependence across a block's edge is lost): over 400 trials of
    this process with phi = 0.5 and a level sd of 0.2 it measured 0.88-0.90,
    with phi = 0.8 about 0.80.
    """
    hits = []
    for seed in range(200):
        a, b = _quantile_pair(seed, 0.95)
        found = bootstrap_ratio(a, b, n_boot=400, seed=seed)
        assert _inside(found), seed
        hits.append(found.low <= K <= found.high)
    coverage = float(np.mean(hits))
    assert 0.90 <= coverage <= 0.99, coverage


def _pieces_of_every_kind(seed: int) -> list[tuple[str, Pieces, Pieces]]:
    """Before/after pieces of each statistic the comparison bootstraps, with K = 0.5."""
    rng = np.random.default_rng(seed)
    (ms_a, s_a), (ms_b, s_b) = _latencies(rng, 1.0), _latencies(rng, K)
    out: list[tuple[str, Pieces, Pieces]] = [
        (f"p{round(100 * q)}", PooledQuantile(ms_a, s_a, SECONDS, q),
         PooledQuantile(ms_b, s_b, SECONDS, q))
        for q in (0.5, 0.95, 0.99)
    ]  # fmt: skip
    le = np.array([5.0, 10.0, 25.0, 50.0, 100.0, 250.0, np.inf])
    for estimate in ("interpolate", "upper"):
        hists = [
            np.array([[(ms[second == t] <= b).sum() for b in le] for t in range(SECONDS)],
                     dtype=float)
            for ms, second in ((ms_a, s_a), (ms_b, s_b))
        ]  # fmt: skip
        out.append((f"histogram {estimate}", PooledHistogram(le, hists[0], 0.95, estimate),
                    PooledHistogram(le, hists[1], 0.95, estimate)))  # fmt: skip
    requests = [np.bincount(s, minlength=SECONDS).astype(float) for s in (s_a, s_b)]
    failures = [
        rng.binomial(r.astype(int), p).astype(float)
        for r, p in zip(requests, (0.05, 0.02), strict=True)
    ]
    out.append(("error rate", PooledRatio(failures[0], requests[0]),
                PooledRatio(failures[1], requests[1])))  # fmt: skip
    out.append(("rps", PooledRatio(requests[0], np.ones(SECONDS)),
                PooledRatio(requests[1], np.ones(SECONDS))))  # fmt: skip
    return out


def test_the_point_is_inside_its_ci_for_every_statistic_and_seed() -> None:
    widened = 0
    for seed in range(40):
        for name, a, b in _pieces_of_every_kind(seed):
            found = bootstrap_ratio(a, b, n_boot=200, seed=seed)
            assert _inside(found), (name, seed, found)
            assert found.point == pytest.approx(whole(b) / whole(a))
            widened += found.widened
        x = np.arange(SECONDS, dtype=float) * 100
        rng = np.random.default_rng(seed)
        slopes = [PooledSlope(x, 50 + slope * x + rng.normal(0, 2, SECONDS)) for slope in (0.01, 0)]
        found = bootstrap_difference(*slopes, n_boot=200, seed=seed)
        assert _inside(found), ("slope", seed, found)
    # The extension is a guard, not the rule: the percentile interval of the pooled
    # statistic holds its point nearly always by itself.
    assert widened <= 0.05 * 40 * 7


def test_the_guarantee_holds_where_a_percentile_interval_alone_misses() -> None:
    """A lumpy statistic whose point sits in the tail of its resamples: the p99 of a
    run whose only slow requests, 0.6% of them, are in its first and in its last
    second. Only together are they more than 1%; a moving block draws an end
    second seldom (one block start of 53 reaches it), so ~3% of the resamples hold
    both and the rest have a fast p99. The point is above the plain percentile
    interval; the extended one holds it."""
    rng = np.random.default_rng(3)
    second = np.repeat(np.arange(SECONDS), 100)
    ms = rng.lognormal(3.0, 0.2, second.size)
    for end in (0, SECONDS - 1):
        ms[np.flatnonzero(second == end)[:36]] *= 50
    a = PooledQuantile(ms, second, SECONDS, 0.99)
    b = PooledQuantile(rng.lognormal(3.0, 0.2, second.size), second, SECONDS, 0.99)
    found = bootstrap_ratio(a, b, seed=0)
    assert found.widened and _inside(found)
    assert found.low == found.point  # the resamples' ratios are all above it but ~3%


def _old_method_ci(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], seed: int
) -> tuple[float, float]:
    """What the comparison did before: a percentile CI of the ratio of the medians
    of per-second p95s, while the row's point is the p95 of every request."""

    def per_second_p95(ms: np.ndarray, second: np.ndarray) -> PooledQuantile:
        p95 = np.array([np.percentile(ms[second == t], 95) for t in range(SECONDS)])
        return PooledQuantile(p95, np.arange(SECONDS), SECONDS, 0.5)  # their median

    pa, pb = per_second_p95(*a), per_second_p95(*b)
    rng = np.random.default_rng(seed)
    ratios = pb.statistic(block_weights(SECONDS, None, 2000, rng)) / pa.statistic(
        block_weights(SECONDS, None, 2000, rng)
    )
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def test_a_heavy_tailed_run_no_longer_contradicts_its_ci() -> None:
    """The reviewer's etl-in-memory shape: before, one second in five stalls and 40%
    of its requests take ~0.5 s, so the p95 of every request is a stalled one
    (8% are) while most seconds' own p95 is ~14 ms. After, every request takes
    ~40 ms. The point (the summary's p95s) says 8x better; the old CI of
    per-second medians said 3-4x worse."""
    rng = np.random.default_rng(7)
    second = np.repeat(np.arange(SECONDS), 50)
    before = rng.lognormal(np.log(10.0), 0.2, second.size)
    stalled = (second % 5 == 0) & (rng.random(second.size) < 0.4)
    before[stalled] = rng.lognormal(np.log(500.0), 0.2, stalled.sum())
    after = rng.lognormal(np.log(40.0), 0.2, second.size)
    a = PooledQuantile(before, second, SECONDS, 0.95)
    b = PooledQuantile(after, second, SECONDS, 0.95)
    point = whole(b) / whole(a)
    assert point < 0.2  # much better

    old_low, old_high = _old_method_ci((before, second), (after, second), seed=0)
    assert old_low > 1  # "worse", beyond noise: the contradiction
    assert not old_low <= point <= old_high

    found = bootstrap_ratio(a, b, seed=0)
    assert found.point == point
    assert found.low <= point <= found.high
    assert found.high < 1  # better, beyond noise: the verdict follows the point
    assert not found.widened  # held by the percentile interval itself


def _write_requests(
    run: Path, ms: np.ndarray, second: np.ndarray, rng: np.random.Generator
) -> None:
    with (run / "requests.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["start", "name", "ms", "bytes", "ok"])
        for value, t in zip(ms, second + rng.random(second.size), strict=True):
            writer.writerow([f"{T0 + t:.4f}", "GET /products", f"{value:.3f}", 512, 1])


@pytest.mark.parametrize("seed", range(4))
def test_every_row_of_a_comparison_holds_its_point(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    before = make_run(tmp_path, "before", slope_mb_per_10k=20.0, variant="faulty")
    after = make_run(tmp_path, "after", slope_mb_per_10k=1.0, variant="fixed")
    _write_requests(before, *_latencies(rng, 1.0), rng)
    _write_requests(after, *_latencies(rng, K), rng)
    result = compare_runs(before, after, n_boot=300, seed=seed)
    rows = {row["name"]: row for row in result["metrics"]}
    with_ci = [row for row in rows.values() if row["ci_low"] is not None]
    assert {row["name"] for row in with_ci} >= {
        "rps", "p50_ms", "p95_ms", "p99_ms", "error_rate", "rss_slope_mb_per_10k_requests",
        "event_loop_lag_p99_ms", "server_p95_ms", "app_cpu_ms_per_request",
    }  # fmt: skip
    for row in with_ci:
        point = row["difference"] if row["ci_kind"] == "difference" else row["ratio"]
        assert row["ci_low"] <= point <= row["ci_high"], row
        null = 0.0 if row["ci_kind"] == "difference" else 1.0
        assert row["significant"] == (not row["ci_low"] <= null <= row["ci_high"]), row
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert rows[key]["ratio"] == pytest.approx(K, rel=0.15)
        assert rows[key]["significant"] is True
        assert rows[key]["source"] == "client (Locust): requests.csv, every request, exact"
    assert rows["server_p95_ms"]["source"].startswith("server side (app)")
    json.dumps(result)  # comparison.json stays plain JSON
