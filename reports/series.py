"""Time series derived from the evidence: per-second Locust numbers, RSS against
requests, per-interval quantiles from bucket deltas, CPU per second.

Shared by the summary, the plots and the comparison. Every function returns None
when its inputs are missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .evidence import Evidence, bucket_snapshots, counter_total
from .stats import Estimate, PooledHistogram, fit_slope, histogram_quantile

__all__ = [
    "LAG_METRIC",
    "MB",
    "REQUESTS_METRIC",
    "SERVER_DURATION_METRIC",
    "WARMUP_FRACTION",
    "RssFit",
    "cpu_per_request_samples",
    "cpu_percent",
    "histogram_pieces",
    "interval_quantiles",
    "per_second",
    "requests_at",
    "rss_fit",
]

MB = 1024 * 1024  # RSS is reported in MiB, written "MB"
# The RSS fit leaves out the warm-up: the first quarter of the load window, and at
# least its first WARMUP_MIN_S, in which a worker settles (lazy imports, the
# allocator's arenas, connection pools, a bounded cache filling: ~2 MB in its first
# 5-6 s here, then flat). A settling that ends at a time, not a request count, made
# a short or slow run's slope per request look like a leak (5.4 MB per 10k in a
# 12 s run against 1.2 in a 30 s one). Never more than half the window, so a short
# run still has points to fit.
WARMUP_FRACTION = 0.25
WARMUP_MIN_S = 6.0
WARMUP_MAX_FRACTION = 0.5
MIN_SLOPE_POINTS = 4
REQUESTS_METRIC = "http_requests_total"
SERVER_DURATION_METRIC = "http_request_duration_seconds_bucket"
LAG_METRIC = "event_loop_lag_seconds_bucket"
METRICS_ROUTE = "/metrics"


def per_second(ev: Evidence) -> pd.DataFrame | None:
    """Locust's Aggregated history in the load window, one row per history row.

    Columns: t, dt (seconds since the previous row), users, requests and failures
    (deltas since the previous row), rps, fps, error_rate (failures / requests of that
    interval) and p50/p95/p99 in ms (NaN for N/A).
    """
    hist = ev.history
    if hist is None or hist.empty:
        return None
    dt = hist["Timestamp"].diff()
    total = hist["Total Request Count"]
    fails = hist["Total Failure Count"]
    if total.notna().sum() >= 2:
        req = total.diff()
        fail = fails.diff() if fails.notna().sum() >= 2 else pd.Series(0.0, index=hist.index)
        rps = req / dt
        fps = fail / dt
    else:  # no cumulative counters: fall back on Locust's own (smoothed) rates
        req = hist["Requests/s"] * dt
        fail = hist["Failures/s"] * dt
        rps = hist["Requests/s"]
        fps = hist["Failures/s"]
    out = pd.DataFrame(
        {
            "t": hist["t"],
            "dt": dt,
            "users": hist["User Count"],
            "requests": req,
            "failures": fail,
            "rps": rps,
            "fps": fps,
            "p50": hist["50%"],
            "p95": hist["95%"],
            "p99": hist["99%"],
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["error_rate"] = np.where(out["requests"] > 0, out["failures"] / out["requests"], np.nan)
    out = out.loc[dt > 0]
    out = ev.in_window(out)
    return None if out.empty else out.reset_index(drop=True)


def requests_at(ev: Evidence, ts: NDArray[np.float64]) -> tuple[NDArray[np.float64], str] | None:
    """Cumulative request count at the given unix times, and where it came from.

    From the app's `http_requests_total` (summed over labels, without route=/metrics);
    else interpolated from Locust's "Total Request Count". Times outside the counter's
    sampled range get NaN.
    """
    counter = counter_total(ev, REQUESTS_METRIC, exclude_route=METRICS_ROUTE, window=False)
    if counter is not None and len(counter) >= 2:
        xs = counter["ts"].to_numpy(dtype=float)
        ys = counter["value"].to_numpy(dtype=float)
        source = REQUESTS_METRIC
    elif ev.history is not None and ev.history["Total Request Count"].notna().sum() >= 2:
        hist = ev.history.dropna(subset=["Total Request Count"])
        xs = hist["Timestamp"].to_numpy(dtype=float)
        ys = hist["Total Request Count"].to_numpy(dtype=float)
        source = "locust history Total Request Count"
    else:
        return None
    values = np.interp(ts, xs, ys)
    values[(ts < xs[0] - 0.5) | (ts > xs[-1] + 0.5)] = np.nan
    return values, source


@dataclass
class RssFit:
    """RSS samples in the load window against cumulative requests, and the fitted slope."""

    points: pd.DataFrame  # t, rss_mb, requests, fitted (bool: after the warm-up)
    slope_mb_per_request: float | None
    intercept_mb: float | None
    source: str | None  # where the request counts came from

    @property
    def slope_per_10k(self) -> float | None:
        s = self.slope_mb_per_request
        return None if s is None else s * 10_000

    @property
    def fitted(self) -> pd.DataFrame:
        return self.points.loc[self.points["fitted"]].dropna(subset=["requests"])


def rss_fit(ev: Evidence) -> RssFit | None:
    """RSS (MB) vs cumulative requests, fitted after the warm-up (see WARMUP_MIN_S)."""
    rss = counter_total(ev, "lab_app_rss_bytes")
    if rss is None:
        return None
    points = pd.DataFrame({"t": rss["t"], "rss_mb": rss["value"] / MB})
    found = requests_at(ev, rss["ts"].to_numpy(dtype=float))
    points["requests"] = found[0] if found is not None else np.nan
    duration = ev.duration_s
    span = duration if duration is not None else float(points["t"].max())
    warmup = min(max(WARMUP_FRACTION * span, WARMUP_MIN_S), WARMUP_MAX_FRACTION * span)
    points["fitted"] = points["t"] >= warmup
    fit = RssFit(points=points, slope_mb_per_request=None, intercept_mb=None, source=None)
    if found is None:
        return fit
    fit.source = found[1]
    sel = fit.fitted
    if len(sel) < MIN_SLOPE_POINTS:
        return fit
    x = sel["requests"].to_numpy(dtype=float)
    y = sel["rss_mb"].to_numpy(dtype=float)
    try:
        slope = fit_slope(x, y)
    except ValueError:
        return fit
    fit.slope_mb_per_request = slope
    fit.intercept_mb = float(y.mean() - slope * x.mean())
    return fit


def _buckets(row: pd.Series) -> list[tuple[float, float]]:
    return [(float(str(le)), float(c)) for le, c in row.items()]


def histogram_pieces(
    ev: Evidence,
    name: str,
    q: float,
    estimate: Estimate = "interpolate",
    exclude_route: str | None = None,
) -> PooledHistogram | None:
    """A histogram of the load window cut into its sampling intervals (about a second
    each): each interval's increase of every bucket, summed over the other labels.

    On the whole window the pieces add up to the last sample minus the first: the
    summary's number. An interval where a count went down (a counter reset) is left
    out rather than subtracted. None with fewer than two samples or no interval left.
    """
    snap = bucket_snapshots(ev, name, exclude_route)
    if snap is None or len(snap) < 2:
        return None
    bounds = np.asarray([float(str(le)) for le in snap.columns], dtype=float)
    if bounds.size < 2 or not math.isinf(bounds[-1]):
        return None
    deltas = np.diff(snap.to_numpy(dtype=float), axis=0)
    deltas = deltas[(deltas >= 0).all(axis=1)]
    if deltas.shape[0] == 0:
        return None
    return PooledHistogram(bounds=bounds, counts=deltas, q=q, estimate=estimate)


def interval_quantiles(
    ev: Evidence, name: str, q: float, exclude_route: str | None = None
) -> pd.DataFrame | None:
    """`t, value`: the q-quantile of each interval between consecutive samples (from
    bucket deltas). Intervals without observations or with a counter reset are dropped."""
    snap = bucket_snapshots(ev, name, exclude_route)
    if snap is None or len(snap) < 2:
        return None
    times = snap.attrs.get("t", [])
    deltas = snap.diff().iloc[1:]
    rows: list[tuple[float, float]] = []
    for i, (_, row) in enumerate(deltas.iterrows(), start=1):
        if (row < 0).any():
            continue
        value = histogram_quantile(q, _buckets(row))
        if value is not None and math.isfinite(value):
            rows.append((float(times[i]), value))
    if not rows:
        return None
    return pd.DataFrame(rows, columns=["t", "value"])


def _rate(counter: pd.DataFrame) -> pd.DataFrame:
    dt = counter["ts"].diff()
    dv = counter["value"].diff()
    out = pd.DataFrame({"t": counter["t"], "dt": dt, "delta": dv, "ts": counter["ts"]})
    return out.loc[(dt > 0) & (dv >= 0)]


def cpu_percent(ev: Evidence) -> dict[str, pd.DataFrame]:
    """Per-interval CPU% (100% = one core) of the app tree and of Locust: `t, value`."""
    out: dict[str, pd.DataFrame] = {}
    for label, name in (
        ("app", "lab_app_cpu_seconds_total"),
        ("locust", "lab_locust_cpu_seconds_total"),
    ):
        counter = counter_total(ev, name)
        if counter is None or len(counter) < 2:
            continue
        rate = _rate(counter)
        if not rate.empty:
            out[label] = pd.DataFrame(
                {"t": rate["t"], "value": 100.0 * rate["delta"] / rate["dt"]}
            ).reset_index(drop=True)
    return out


def cpu_per_request_samples(ev: Evidence) -> NDArray[np.float64] | None:
    """Rows `(app_cpu_seconds, requests)` per sampling interval of the load window."""
    counter = counter_total(ev, "lab_app_cpu_seconds_total")
    if counter is None or len(counter) < 3:
        return None
    found = requests_at(ev, counter["ts"].to_numpy(dtype=float))
    if found is None:
        return None
    cpu = counter["value"].to_numpy(dtype=float)
    req = found[0]
    rows = np.column_stack([np.diff(cpu), np.diff(req)])
    ok = np.isfinite(rows).all(axis=1) & (rows >= 0).all(axis=1)
    rows = rows[ok]
    return rows if rows.shape[0] >= 2 else None
