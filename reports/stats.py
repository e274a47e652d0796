"""Pure statistics used by the reports: no I/O, no pandas, deterministic.

- `histogram_quantile`: Prometheus' `histogram_quantile` over cumulative buckets.
- `fit_slope`: ordinary least squares slope.
- `block_bootstrap_ci`: moving-block bootstrap CI of statistic(b) / statistic(a).
- `block_bootstrap_slope` / `block_bootstrap_slope_diff`: the same for regression slopes,
  resampling (x, y) pairs in blocks and refitting.

Moving blocks keep the autocorrelation of per-second samples (a slow second is
followed by another slow second), so the CI is not over-confident the way an
i.i.d. bootstrap of time series would be.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SlopeDiff",
    "block_bootstrap_ci",
    "block_bootstrap_slope",
    "block_bootstrap_slope_diff",
    "default_block",
    "fit_slope",
    "histogram_quantile",
]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram, with Prometheus semantics.

    `buckets` are `(le, cumulative_count)` pairs in any order; one must have
    `le == +Inf`. Inside the bucket that holds the rank, the value is linearly
    interpolated (the lower bound of the first bucket is 0 when its upper bound is
    positive). A rank that falls in the +Inf bucket returns the highest finite bound.
    Returns None where Prometheus returns NaN: no +Inf bucket, fewer than two
    buckets, no observations, or q is NaN. q < 0 gives -inf and q > 1 gives +inf.
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    pairs = sorted((float(le), float(c)) for le, c in buckets)
    if len(pairs) < 2 or not math.isinf(pairs[-1][0]) or pairs[-1][0] < 0:
        return None
    # Counts must be monotonic; scrapes of several series can break that slightly.
    bounds: list[float] = []
    counts: list[float] = []
    running = 0.0
    for le, c in pairs:
        running = max(running, c)
        bounds.append(le)
        counts.append(running)
    observations = counts[-1]
    if observations <= 0 or math.isnan(observations):
        return None
    rank = q * observations
    b = bisect.bisect_left(counts[:-1], rank)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    bucket_start = 0.0
    bucket_end = bounds[b]
    count = counts[b]
    if b > 0:
        bucket_start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count <= 0:
        return bucket_start
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def fit_slope(x: ArrayLike, y: ArrayLike) -> float:
    """Least-squares slope of y against x.

    Raises ValueError with fewer than two points, mismatched lengths, or when x is constant.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    if xa.size < 2:
        raise ValueError("need at least two points to fit a slope")
    dx = xa - xa.mean()
    var = float(np.dot(dx, dx))
    if var == 0.0:
        raise ValueError("x is constant: the slope is undefined")
    return float(np.dot(dx, ya - ya.mean()) / var)


def default_block(n: int) -> int:
    """Default block length of the moving-block bootstrap: about sqrt(n), at least 1."""
    return max(1, round(math.sqrt(n)))


def _block_indices(
    n: int, block: int | None, n_boot: int, rng: np.random.Generator
) -> NDArray[np.intp]:
    """(n_boot, n) indices: each row is n consecutive-block draws from range(n)."""
    length = default_block(n) if block is None else max(1, min(int(block), n))
    n_blocks = -(-n // length)
    starts = rng.integers(0, n - length + 1, size=(n_boot, n_blocks))
    idx = starts[:, :, None] + np.arange(length)[None, None, :]
    return idx.reshape(n_boot, n_blocks * length)[:, :n].astype(np.intp)


def _as_samples(samples: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(samples, dtype=float)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _ci(values: NDArray[np.float64], alpha: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _ratio(num: float, den: float) -> float:
    if den == 0 or not math.isfinite(den) or not math.isfinite(num):
        return math.nan
    return num / den


def block_bootstrap_ci(
    samples_a: ArrayLike,
    samples_b: ArrayLike,
    statistic: Callable[[NDArray[np.float64]], float],
    n_boot: int = 2000,
    alpha: float = 0.05,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Moving-block bootstrap of statistic(b) / statistic(a).

    Samples are time-ordered along axis 0; they may be 2-D (one row per second, e.g.
    `(requests, failures)`), in which case `statistic` receives the resampled rows.
    Each run is resampled on its own, in blocks of `block` consecutive samples
    (default ~sqrt(n) of that run). Returns `(ratio, low, high)`: the ratio on the
    original samples and the percentile CI at level 1 - alpha. Undefined values
    (statistic(a) == 0) are NaN; resamples with an undefined ratio are dropped.
    Deterministic given `seed`.
    """
    a = _as_samples(samples_a, "samples_a")
    b = _as_samples(samples_b, "samples_b")
    ratio = _ratio(float(statistic(b)), float(statistic(a)))
    rng = np.random.default_rng(seed)
    idx_a = _block_indices(a.shape[0], block, n_boot, rng)
    idx_b = _block_indices(b.shape[0], block, n_boot, rng)
    boots = np.array(
        [
            _ratio(float(statistic(b[ib])), float(statistic(a[ia])))
            for ia, ib in zip(idx_a, idx_b, strict=True)
        ],
        dtype=float,
    )
    low, high = _ci(boots, alpha)
    return ratio, low, high


def _slopes(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise least-squares slopes of (n_boot, n) arrays; NaN where x is constant."""
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean(axis=1, keepdims=True)
    var = (dx * dx).sum(axis=1)
    cov = (dx * dy).sum(axis=1)
    out = np.full(var.shape, math.nan)
    ok = var > 0
    out[ok] = cov[ok] / var[ok]
    return out


def _pairs(x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    if xa.size < 2:
        raise ValueError("need at least two points to fit a slope")
    return xa, ya


def _boot_slopes(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    n_boot: int,
    block: int | None,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    idx = _block_indices(x.size, block, n_boot, rng)
    return _slopes(x[idx], y[idx])


def block_bootstrap_slope(
    x: ArrayLike,
    y: ArrayLike,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float, float]:
    """`(slope, low, high)`: least-squares slope and its moving-block bootstrap CI.

    The (x, y) pairs are resampled in blocks of consecutive pairs and refitted.
    """
    xa, ya = _pairs(x, y)
    slope = fit_slope(xa, ya)
    boots = _boot_slopes(xa, ya, n_boot, block, np.random.default_rng(seed))
    low, high = _ci(boots, alpha)
    return slope, low, high


@dataclass(frozen=True)
class SlopeDiff:
    """Slopes of two runs, their CIs, and the CI of `slope_b - slope_a`."""

    slope_a: float
    slope_b: float
    a_low: float
    a_high: float
    b_low: float
    b_high: float
    diff: float
    diff_low: float
    diff_high: float

    @property
    def significant(self) -> bool:
        """The CI of the difference excludes 0."""
        return bool(self.diff_low > 0 or self.diff_high < 0)


def block_bootstrap_slope_diff(
    x_a: ArrayLike,
    y_a: ArrayLike,
    x_b: ArrayLike,
    y_b: ArrayLike,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    block: int | None = None,
    seed: int = 0,
) -> SlopeDiff:
    """Moving-block bootstrap of two regression slopes and of their difference (b - a)."""
    xa, ya = _pairs(x_a, y_a)
    xb, yb = _pairs(x_b, y_b)
    slope_a = fit_slope(xa, ya)
    slope_b = fit_slope(xb, yb)
    rng = np.random.default_rng(seed)
    boots_a = _boot_slopes(xa, ya, n_boot, block, rng)
    boots_b = _boot_slopes(xb, yb, n_boot, block, rng)
    a_low, a_high = _ci(boots_a, alpha)
    b_low, b_high = _ci(boots_b, alpha)
    diff_low, diff_high = _ci(boots_b - boots_a, alpha)
    return SlopeDiff(
        slope_a=slope_a,
        slope_b=slope_b,
        a_low=a_low,
        a_high=a_high,
        b_low=b_low,
        b_high=b_high,
        diff=slope_b - slope_a,
        diff_low=diff_low,
        diff_high=diff_high,
    )
