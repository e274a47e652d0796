"""The summary's metrics cut into time pieces, for the comparison's bootstrap.

A summary number is one value per run; the comparison needs its spread to tell
a change from noise. Each metric that has a time series declares (in
reports/metrics.py) how its evidence is cut into pieces of about a second, in
time order, and how its statistic is computed on any multiset of pieces
(`reports.stats.Pieces`). The statistic is the summary's own, computed on what
the drawn pieces hold, pooled: every request of the drawn seconds for a
percentile, their bucket counts summed for a histogram quantile, their counts
summed for a rate. The whole run (every piece once) gives the summary's number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .evidence import Evidence
from .latency import request_latencies
from .series import (
    LAG_METRIC,
    SERVER_DURATION_METRIC,
    cpu_per_request_samples,
    histogram_pieces,
    per_second,
    rss_fit,
)
from .stats import Pieces, PooledHistogram, PooledQuantile, PooledRatio, PooledSlope

__all__ = [
    "LAG_QUANTILE",
    "SERVER_QUANTILE",
    "Samples",
    "cpu_ms_per_request",
    "error_rate",
    "loop_lag_p99",
    "request_quantile",
    "rps",
    "rss_slope",
    "server_p95_bucket",
]

# The quantiles the summary reads from the app's histograms.
LAG_QUANTILE = 0.99
SERVER_QUANTILE = 0.95
METRICS_ROUTE = "/metrics"


@dataclass(frozen=True)
class Samples:
    """How a metric's evidence is cut into pieces, and what the comparison bootstraps:
    the ratio after / before, or the difference after - before (a slope, which can be
    zero or negative)."""

    of: Callable[[Evidence], Pieces | None]
    compare: Literal["ratio", "difference"] = "ratio"


def request_quantile(q: float, *, corrected: bool = True) -> Callable[[Evidence], Pieces | None]:
    """requests.csv's requests, each in the second its latency runs from (it started
    in; in an open run, its intended send time): the exact percentile of every
    request of the drawn seconds (the client's latency, as the summary's
    `p50_ms`/`p95_ms`/`p99_ms`, or with `corrected=False` from the actual send, as
    `p99_uncorrected_ms`: reports/latency.py). None without requests.csv: Locust's
    CSVs have no per-request times, so a bootstrap of their percentile is not
    possible."""

    def of(ev: Evidence) -> Pieces | None:
        frame = request_latencies(ev, corrected=corrected)
        if frame is None:
            return None
        at = frame["at"].to_numpy(dtype=float)
        origin = ev.load_start_ts if ev.load_start_ts is not None else float(at.min())
        second = np.floor(at - origin).astype(np.int64)
        # Every row the summary counts, in a piece of its own second; the empty
        # seconds between stay pieces, so a block is a span of time.
        second -= second.min()
        return PooledQuantile(frame["ms"].to_numpy(dtype=float), second, int(second.max()) + 1, q)

    return of


def rps(ev: Evidence) -> Pieces | None:
    """Requests over seconds of each row of Locust's history: requests / time, pooled."""
    ps = per_second(ev)
    if ps is None:
        return None
    rows = ps[["requests", "dt"]].to_numpy(dtype=float)
    rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 0] >= 0) & (rows[:, 1] > 0)]
    return PooledRatio(rows[:, 0], rows[:, 1]) if rows.shape[0] else None


def error_rate(ev: Evidence) -> Pieces | None:
    """Failures over requests of each row of Locust's history, pooled."""
    ps = per_second(ev)
    if ps is None:
        return None
    rows = ps[["requests", "failures"]].to_numpy(dtype=float)
    rows = rows[np.isfinite(rows).all(axis=1) & (rows >= 0).all(axis=1)]
    return PooledRatio(rows[:, 1], rows[:, 0]) if rows.shape[0] else None


def cpu_ms_per_request(ev: Evidence) -> Pieces | None:
    """The app's CPU seconds over the requests it served, per sampling interval, in ms."""
    rows = cpu_per_request_samples(ev)
    if rows is None:
        return None
    return PooledRatio(rows[:, 0], rows[:, 1], scale=1000.0)


def loop_lag_p99(ev: Evidence) -> PooledHistogram | None:
    """The event-loop lag histogram per interval; its p99 by Prometheus' interpolation, ms."""
    pieces = histogram_pieces(ev, LAG_METRIC, LAG_QUANTILE)
    return None if pieces is None else _in_ms(pieces)


def server_p95_bucket(end: Literal["upper", "lower"]) -> Callable[[Evidence], Pieces | None]:
    """The app's request-duration histogram per interval (/metrics left out), and one
    end of the bucket that holds its p95, in ms: between them is the exact p95 of the
    server-side durations, which the histogram does not know more precisely."""

    def of(ev: Evidence) -> Pieces | None:
        pieces = histogram_pieces(
            ev, SERVER_DURATION_METRIC, SERVER_QUANTILE, end, exclude_route=METRICS_ROUTE
        )
        return None if pieces is None else _in_ms(pieces)

    return of


def _in_ms(pieces: PooledHistogram) -> PooledHistogram:
    return PooledHistogram(pieces.bounds * 1000, pieces.counts, pieces.q, pieces.estimate)


def rss_slope(ev: Evidence) -> Pieces | None:
    """(cumulative requests, RSS MB) after the warm-up, one point per sample: the slope
    the summary fits, in MB per 10k requests."""
    fit = rss_fit(ev)
    if fit is None:
        return None
    points = fit.fitted
    x = points["requests"].to_numpy(dtype=float)
    y = points["rss_mb"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or math.isclose(float(np.ptp(x[ok])), 0.0):
        return None
    return PooledSlope(x[ok], y[ok], scale=10_000)
