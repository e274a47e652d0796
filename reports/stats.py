"""Pure statistics used by the reports: no I/O, no pandas, deterministic.

- `histogram_quantile`: Prometheus' `histogram_quantile` over cumulative buckets;
  `histogram_quantiles`: the same over many histograms at once, or the bounds of
  the bucket that holds the quantile.
- `fit_slope`: ordinary least squares slope.
- Pooled statistics of time pieces (`Pieces`): `PooledQuantile` (the exact
  percentile of every value the pieces hold), `PooledHistogram` (a quantile of
  the summed bucket counts), `PooledRatio` (a ratio of sums), `PooledSlope`
  (a least-squares slope of the pieces' points).
- `bootstrap_ratio` / `bootstrap_difference`: moving-block bootstrap CIs of
  statistic(b) / statistic(a) and statistic(b) - statistic(a).

A run is cut into pieces along time (its seconds, in order). A bootstrap
resample draws moving blocks of consecutive pieces, so it keeps the
autocorrelation of a run (a slow second is followed by another slow second) and
is not over-confident the way an i.i.d. bootstrap of a time series would be. The
statistic is then computed on what the drawn pieces hold, pooled: the same
computation the summary makes on the whole run, which is the resample that
draws every piece once.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Estimate",
    "Interval",
    "Pieces",
    "PooledHistogram",
    "PooledQuantile",
    "PooledRatio",
    "PooledSlope",
    "block_weights",
    "bootstrap_difference",
    "bootstrap_ratio",
    "default_block",
    "fit_slope",
    "histogram_quantile",
    "histogram_quantiles",
    "whole",
]

Array = NDArray[np.float64]
# What a histogram says about a quantile: Prometheus' interpolation inside the
# bucket that holds it (a guess: it assumes the observations spread evenly over
# the bucket), or that bucket's bounds, between which the quantile certainly is.
Estimate = Literal["interpolate", "upper", "lower"]


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


def histogram_quantiles(
    q: float, bounds: ArrayLike, cumulative: ArrayLike, estimate: Estimate = "interpolate"
) -> Array:
    """The q-quantile (0 < q <= 1) of each row of `cumulative`, one histogram per row.

    `bounds` are the buckets' `le`, ascending, the last +Inf; `cumulative` is
    (m, len(bounds)) cumulative counts. "interpolate" is `histogram_quantile`, row
    by row. "upper" and "lower" are the bucket that holds the rank: the first whose
    cumulative count reaches q * total. With `le` meaning "at most", at least
    q * total observations are <= its upper bound and fewer than q * total are <=
    its lower bound, so the exact quantile (the smallest observation with at least
    that share at or below it) is in (lower, upper]. A rank in the +Inf bucket has
    no upper bound: +inf. NaN for a row without observations.
    """
    le = np.asarray(bounds, dtype=float)
    cum = np.maximum.accumulate(np.atleast_2d(np.asarray(cumulative, dtype=float)), axis=1)
    if le.ndim != 1 or le.size < 2 or not math.isinf(le[-1]) or cum.shape[1] != le.size:
        raise ValueError("bounds must be ascending `le` values ending with +Inf, one per column")
    total = cum[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):  # rows without observations: NaN
        out = _bucket_estimate(q, le, cum, total, estimate)
    result: Array = np.where(total > 0, out, math.nan).astype(float)
    return result


def _bucket_estimate(q: float, le: Array, cum: Array, total: Array, estimate: Estimate) -> Array:
    rank = q * total
    rows = np.arange(cum.shape[0])
    # bisect_left over the finite buckets: the first whose count reaches the rank.
    b = (cum[:, :-1] < rank[:, None]).sum(axis=1)
    in_inf = b == le.size - 1
    upper = np.where(in_inf, math.inf, le[np.minimum(b, le.size - 2)])
    lower_le = np.where(b > 0, le[np.maximum(b - 1, 0)], 0.0)
    if estimate == "upper":
        out = upper
    elif estimate == "lower":
        out = lower_le
    else:
        below = np.where(b > 0, cum[rows, np.maximum(b - 1, 0)], 0.0)
        inside = cum[rows, np.minimum(b, le.size - 1)] - below
        share = np.where(inside > 0, (rank - below) / inside, 0.0)
        out = np.where(
            in_inf, le[-2], np.where(inside > 0, lower_le + (upper - lower_le) * share, lower_le)
        )
        out = np.where((b == 0) & (le[0] <= 0), le[0], out)
    found: Array = np.asarray(out, dtype=float)
    return found


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


# --- pooled statistics of time pieces -------------------------------------------------------


class Pieces(Protocol):
    """A run cut into `n` time-ordered pieces, and a statistic of any multiset of them.

    `statistic(weights)` takes (m, n) weights, how many times each piece is drawn
    in each of m resamples, and returns the m statistics of the pooled resamples
    (NaN where undefined). All ones is the whole run.
    """

    @property
    def n(self) -> int: ...

    def statistic(self, weights: Array) -> Array: ...


def whole(pieces: Pieces) -> float:
    """The statistic of the whole run: every piece drawn once."""
    return float(pieces.statistic(np.ones((1, pieces.n)))[0])


class PooledQuantile:
    """The exact q-quantile of the values of the drawn pieces, each as often as drawn.

    Locust's definition, as `reports.evidence.exact_quantiles` (numpy's
    `inverted_cdf`): the smallest value with at least a share q of the pooled
    values at or below it. On the whole run it is that function's result, exactly.
    """

    def __init__(self, values: ArrayLike, piece: ArrayLike, n: int, q: float) -> None:
        vals = np.asarray(values, dtype=float)
        idx = np.asarray(piece, dtype=np.int64)
        if vals.ndim != 1 or vals.shape != idx.shape or vals.size == 0:
            raise ValueError("values and piece must be 1-D, non-empty and of the same length")
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError("piece indices must be in range(n)")
        self._n = int(n)
        self.q = float(q)
        order = np.argsort(vals, kind="stable")
        self._sorted = vals[order]
        size = vals.size
        rank = np.empty(size, dtype=np.int64)
        rank[order] = np.arange(size)
        # One sorted key per value, grouped by piece, by rank inside a piece: the
        # count of a piece's values ranked <= j is one searchsorted away.
        self._keys = np.sort(idx * size + rank)
        self._starts = np.searchsorted(self._keys, np.arange(self._n) * size)
        self._sizes = np.bincount(idx, minlength=self._n).astype(float)

    @property
    def n(self) -> int:
        return self._n

    def statistic(self, weights: Array) -> Array:
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        size = self._sorted.size
        target = self.q * (w @ self._sizes)
        # Binary search, for every resample at once, of the smallest rank j whose
        # weighted count of values ranked <= j reaches the target. hi always does.
        lo = np.zeros(w.shape[0], dtype=np.int64)
        hi = np.full(w.shape[0], size - 1, dtype=np.int64)
        base = np.arange(self._n, dtype=np.int64)[None, :] * size
        for _ in range(max(1, int(size).bit_length())):
            mid = (lo + hi) // 2
            ranked = np.searchsorted(self._keys, base + mid[:, None], side="right")
            reached = (w * (ranked - self._starts[None, :])).sum(axis=1) >= target
            hi = np.where(reached, mid, hi)
            lo = np.where(reached, lo, mid + 1)
        out: Array = np.where(target > 0, self._sorted[hi], math.nan)
        return out


@dataclass(frozen=True, eq=False)
class PooledHistogram:
    """A quantile of the bucket counts of the drawn pieces, summed.

    `counts` is (n, len(bounds)): each piece's increase of the cumulative buckets.
    On the whole run the sum is the histogram's increase over the window: what
    the summary reads.
    """

    bounds: Array
    counts: Array
    q: float
    estimate: Estimate = "interpolate"

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])

    def statistic(self, weights: Array) -> Array:
        pooled = np.atleast_2d(np.asarray(weights, dtype=float)) @ self.counts
        return histogram_quantiles(self.q, self.bounds, pooled, self.estimate)


@dataclass(frozen=True, eq=False)
class PooledRatio:
    """`scale * sum(numerator) / sum(denominator)` over the drawn pieces."""

    numerator: Array
    denominator: Array
    scale: float = 1.0

    @property
    def n(self) -> int:
        return int(self.numerator.shape[0])

    def statistic(self, weights: Array) -> Array:
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        num, den = w @ self.numerator, w @ self.denominator
        with np.errstate(divide="ignore", invalid="ignore"):
            out: Array = np.where(den > 0, self.scale * num / np.where(den > 0, den, 1.0), math.nan)
        return out


@dataclass(frozen=True, eq=False)
class PooledSlope:
    """`scale *` the least-squares slope of y against x over the drawn points."""

    x: Array
    y: Array
    scale: float = 1.0

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def statistic(self, weights: Array) -> Array:
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        # Centred first: x is a cumulative request count, large next to its spread.
        x, y = self.x - self.x.mean(), self.y - self.y.mean()
        total = w.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = x[None, :] - (w @ x)[:, None] / total
            dy = y[None, :] - (w @ y)[:, None] / total
            var = (w * dx * dx).sum(axis=1)
            cov = (w * dx * dy).sum(axis=1)
            # A resample whose x is (numerically) constant has no slope.
            ok = var > 1e-12 * float(np.dot(x, x))
            out: Array = np.where(ok, self.scale * cov / np.where(ok, var, 1.0), math.nan)
        return out


# --- the moving-block bootstrap -------------------------------------------------------------


def default_block(n: int) -> int:
    """Default block length of the moving-block bootstrap: about sqrt(n), at least 1."""
    return max(1, round(math.sqrt(n)))


def block_weights(n: int, block: int | None, n_boot: int, rng: np.random.Generator) -> Array:
    """(n_boot, n): how many times each of n pieces is drawn by a moving-block resample.

    Each resample is ceil(n / block) blocks of `block` consecutive pieces (default
    ~sqrt(n)), each starting anywhere, cut to n pieces.
    """
    length = default_block(n) if block is None else max(1, min(int(block), n))
    n_blocks = -(-n // length)
    starts = rng.integers(0, n - length + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(length)[None, None, :]).reshape(n_boot, -1)[:, :n]
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    counts: Array = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)
    return counts


@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap CI: `low <= point <= high`, or all three NaN.

    `widened`: the percentile interval of the resamples missed the point and was
    extended to it (see `bootstrap_ratio`).
    """

    point: float
    low: float
    high: float
    widened: bool = False

    @property
    def defined(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, value: float) -> bool:
        return self.defined and (self.low > value or self.high < value)


_UNDEFINED = Interval(math.nan, math.nan, math.nan)


def _interval(point: float, boots: Array, alpha: float) -> Interval:
    finite = boots[np.isfinite(boots)]
    if finite.size == 0 or not math.isfinite(point):
        return _UNDEFINED
    low, high = (float(v) for v in np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
    widened = not low <= point <= high
    return Interval(point, min(low, point), max(high, point), widened)


def _stretch(n: int, block: int | None) -> float:
    """How much wider a run's resampled statistics must spread around its own.

    Overlapping blocks vary less around the run's mean than the run's independent
    stretches of time would: for independent pieces of variance s2, the n circular
    blocks of length L have means B_i with E[sum (B_i - mean)^2] = n s2 / L * (1 - L / n),
    so a resample of n / L blocks has (1 - L / n) of the variance of the mean. With
    L ~ sqrt(n) that is 13% short for a 60 s run; sqrt(n / (n - L)) puts it back.
    """
    length = default_block(n) if block is None else max(1, min(int(block), n))
    return math.sqrt(n / (n - length)) if length < n else 1.0


def _resampled(
    pieces: Pieces, block: int | None, n_boot: int, rng: np.random.Generator, log: bool
) -> tuple[float, Array]:
    """The whole run's statistic and n_boot resampled ones, their spread stretched
    (`_stretch`) around it: on a log scale for a ratio, where the spread is relative."""
    point = whole(pieces)
    boots = pieces.statistic(block_weights(pieces.n, block, n_boot, rng))
    c = _stretch(pieces.n, block)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not log:
            stretched: Array = point + c * (boots - point)
        elif point > 0:
            stretched = np.where(boots > 0, point * (boots / point) ** c, boots)
        else:  # no relative spread around zero: left as drawn
            stretched = boots
    return point, stretched


def bootstrap_ratio(
    a: Pieces,
    b: Pieces,
    *,
    point: float | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    block: int | None = None,
    seed: int = 0,
) -> Interval:
    """Moving-block bootstrap CI, at level 1 - alpha, of statistic(b) / statistic(a).

    1. Each run is resampled on its own, n_boot times: moving blocks of ~sqrt(n)
       consecutive pieces (`block_weights`). Each resample's statistic is computed
       on what its pieces hold, pooled: the statistic the summary reports (the
       exact p95 of the drawn seconds' requests, the quantile of their summed
       buckets...), not a statistic of per-second statistics.
    2. Each run's resampled statistics are spread around its whole-run statistic
       by sqrt(n / (n - block)), on a log scale (`_stretch`): overlapping blocks
       understate the variance by that factor.
    3. The ratios of the resamples are scaled to `point`, the ratio the interval
       is for (the comparison passes the summaries' after / before). When the
       pieces hold the data the summary's number is computed from (the
       percentiles, the histograms) their whole-run ratio is that point and the
       factor is 1; for rps, error rate and CPU per request, whose summary
       figures come from Locust's totals and their pieces from its history, the
       pieces give the spread and the summary the level.
    4. The interval is the alpha/2 and 1 - alpha/2 percentiles of those ratios,
       extended to `point` when it falls outside them (`widened`).

    Guarantee: `low <= point <= high`, by step 4. A percentile interval alone
    does not always contain its point: for a lumpy or skewed statistic (a bucket
    bound moves in steps; a p99 held up by a few slow seconds is lower in most
    resamples, which miss some of them) the point can sit in the tail of its
    resamples. Extending only widens, so the coverage is at least the percentile
    interval's: tests/unit/test_compare_ci.py measures it (0.94 for a p95 over
    60 s of mildly autocorrelated seconds; about 0.80-0.90 when the seconds of a
    one-minute run are strongly autocorrelated, as with any block bootstrap).

    All NaN (`defined` False) when the ratio is undefined (statistic(a) zero or
    not finite), when the pieces' ratio is zero and `point` is not (or the
    reverse: they do not measure the same thing), or when no resample has a
    defined ratio. Deterministic given `seed`.
    """
    rng = np.random.default_rng(seed)
    a_whole, sa = _resampled(a, block, n_boot, rng, log=True)
    b_whole, sb = _resampled(b, block, n_boot, rng, log=True)
    if a_whole == 0 or not (math.isfinite(a_whole) and math.isfinite(b_whole)):
        return _UNDEFINED
    own = b_whole / a_whole
    point = own if point is None else float(point)
    if not math.isfinite(point) or (own == 0) != (point == 0):
        return _UNDEFINED
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = np.where(sa != 0, sb / np.where(sa != 0, sa, 1.0), math.nan)
    if own != 0:
        boots = boots * (point / own)
    return _interval(point, boots, alpha)


def bootstrap_difference(
    a: Pieces,
    b: Pieces,
    *,
    point: float | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    block: int | None = None,
    seed: int = 0,
) -> Interval:
    """Moving-block bootstrap CI of statistic(b) - statistic(a), for a statistic that
    can be zero or negative (a slope): `bootstrap_ratio`'s construction on a linear
    scale (step 2 stretches the differences, step 3 shifts them by `point` minus
    the pieces' own difference), and its guarantee, `low <= point <= high`."""
    rng = np.random.default_rng(seed)
    a_whole, sa = _resampled(a, block, n_boot, rng, log=False)
    b_whole, sb = _resampled(b, block, n_boot, rng, log=False)
    own = b_whole - a_whole
    if not math.isfinite(own):
        return _UNDEFINED
    point = own if point is None else float(point)
    return _interval(point, sb - sa + (point - own), alpha)
