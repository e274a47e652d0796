"""Per-second samples of the summary's metrics, and the statistics the bootstrap compares.

A summary number is one value per run; the comparison needs its spread to tell
a change from noise, so each metric that has a time series declares (in
reports/metrics.py) how to sample it here and which statistic of the samples
stands for the summary number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .evidence import Evidence
from .series import (
    LAG_METRIC,
    SERVER_DURATION_METRIC,
    interval_quantiles,
    per_second,
    rss_fit,
)

__all__ = [
    "Samples",
    "SlopeSamples",
    "Statistic",
    "cpu_ms_per_request",
    "error_rows",
    "locust_percentile",
    "loop_lag_p99_ms",
    "mean",
    "median",
    "ratio_of_sums",
    "rps",
    "rss_points",
    "server_p95_ms",
]

Array = NDArray[np.float64]
Statistic = Callable[[Array], float]


@dataclass(frozen=True)
class Samples:
    """Samples along time (one row per interval), and the statistic whose
    after/before ratio the bootstrap puts a confidence interval on."""

    of: Callable[[Evidence], Array | None]
    statistic: Statistic


@dataclass(frozen=True)
class SlopeSamples:
    """(x, y) points of a fitted slope: the bootstrap compares the slopes' difference.

    `scale` turns the fit's slope into the summary's unit (MB per request into MB
    per 10k requests).
    """

    of: Callable[[Evidence], tuple[Array, Array] | None]
    scale: float = 1.0


def mean(x: Array) -> float:
    return float(np.mean(x))


def median(x: Array) -> float:
    return float(np.median(x))


def ratio_of_sums(x: Array) -> float:
    """Rows (denominator, numerator): sum(numerator) / sum(denominator)."""
    den = float(x[:, 0].sum())
    return float(x[:, 1].sum()) / den if den > 0 else math.nan


def cpu_ms_per_request(x: Array) -> float:
    """Rows (cpu_seconds, requests): total CPU ms per request."""
    den = float(x[:, 1].sum())
    return 1000.0 * float(x[:, 0].sum()) / den if den > 0 else math.nan


def _finite(values: Any) -> Array:
    arr: Array = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]


def rps(ev: Evidence) -> Array | None:
    ps = per_second(ev)
    return None if ps is None else _finite(ps["rps"])


def locust_percentile(column: str) -> Callable[[Evidence], Array | None]:
    """Locust's percentile of each history row ("p50", "p95", "p99"), in ms."""

    def of(ev: Evidence) -> Array | None:
        ps = per_second(ev)
        return None if ps is None else _finite(ps[column])

    return of


def error_rows(ev: Evidence) -> Array | None:
    """Rows (requests, failures) per history interval."""
    ps = per_second(ev)
    if ps is None:
        return None
    rows: Array = ps[["requests", "failures"]].to_numpy(dtype=float)
    kept: Array = rows[np.isfinite(rows).all(axis=1) & (rows >= 0).all(axis=1)]
    return kept


def loop_lag_p99_ms(ev: Evidence) -> Array | None:
    lag = interval_quantiles(ev, LAG_METRIC, 0.99)
    return None if lag is None else _finite(lag["value"] * 1000)


def server_p95_ms(ev: Evidence) -> Array | None:
    server = interval_quantiles(ev, SERVER_DURATION_METRIC, 0.95, exclude_route="/metrics")
    return None if server is None else _finite(server["value"] * 1000)


def rss_points(ev: Evidence) -> tuple[Array, Array] | None:
    """(cumulative requests, RSS MB) after the warm-up: the points the RSS slope is fitted on."""
    fit = rss_fit(ev)
    if fit is None:
        return None
    points = fit.fitted
    return points["requests"].to_numpy(dtype=float), points["rss_mb"].to_numpy(dtype=float)
