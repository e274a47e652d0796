"""Plots of a run and of a comparison (matplotlib, Agg canvas, no pyplot state).

Each function writes one PNG and returns its path, or returns None (writing
nothing) when its data is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from faults.symptom import finite

from .evidence import PERCENTILE_COLUMNS, Evidence, counter_total, exact_quantiles, machine_cpus
from .latency import load_model, offered_rps, per_second_percentiles, request_latencies
from .metrics import BAR_METRICS
from .series import (
    LAG_METRIC,
    cpu_percent,
    interval_quantiles,
    per_second,
    rss_fit,
)

__all__ = [
    "RUN_PLOTS",
    "CounterIncrease",
    "compare_plots",
    "counter_increase_by",
    "counter_rates",
    "gauge_values",
    "plot_cache",
    "plot_compare_latency_over_time",
    "plot_compare_rss",
    "plot_cpu",
    "plot_database",
    "plot_etl",
    "plot_event_loop_lag",
    "plot_latency",
    "plot_latency_cdf",
    "plot_metric_bars",
    "plot_requests",
    "plot_rollout",
    "plot_rss",
    "plot_status",
    "plot_throughput",
    "plot_upstream",
    "plot_work",
    "run_plots",
]

_COLORS = {"before": "#c0392b", "after": "#2471a3"}


def _label(ev: Evidence) -> str:
    meta = ev.meta
    scenario = meta.get("scenario") or ev.run_dir.name
    variant = meta.get("variant")
    return f"{scenario} / {variant}" if variant else str(scenario)


def _figure(ncols: int = 1, width: float = 9.0, height: float = 4.2) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)
    return fig, [ax for ax in axes[0]]


def _save(fig: Figure, plots_dir: Path, name: str) -> Path:
    plots_dir.mkdir(parents=True, exist_ok=True)
    path = plots_dir / name
    fig.savefig(path, dpi=100)
    return path


# --- one run --------------------------------------------------------------------------------


_PERCENTILE_COLORS = {"p50": "#2471a3", "p95": "#d35400", "p99": "#7d3c98"}


def _plot_open_latency(ev: Evidence, plots_dir: Path) -> Path | None:
    """An open run: p50/p95/p99 of each second from the intended send time (solid)
    and from the actual send (dashed), the same requests binned by intended time."""
    corrected = per_second_percentiles(ev, corrected=True)
    sent = per_second_percentiles(ev, corrected=False)
    if corrected is None or sent is None:
        return None
    fig, (ax,) = _figure()
    for col, color in _PERCENTILE_COLORS.items():
        ax.plot(corrected["t"], corrected[col], "-", color=color,
                label=f"{col} from the intended send time")  # fmt: skip
        ax.plot(sent["t"], sent[col], "--", color=color, alpha=0.7,
                label=f"{col} from the actual send (uncorrected)")  # fmt: skip
    rate = offered_rps(ev.meta)
    ax.set_title(f"{_label(ev)}: latency per second, open model at {rate:g} req/s (requests.csv)")
    ax.set_xlabel("intended send time, since load start (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, plots_dir, "latency.png")


def plot_latency(ev: Evidence, plots_dir: Path) -> Path | None:
    """p50/p95/p99 over time: from Locust's history, or for an open run from
    requests.csv, both from the intended send time and from the actual send."""
    if load_model(ev.meta) == "open":
        found = _plot_open_latency(ev, plots_dir)
        if found is not None:
            return found
    ps = per_second(ev)
    if ps is None or ps[["p50", "p95", "p99"]].notna().sum().sum() == 0:
        return None
    fig, (ax,) = _figure()
    for col, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        ax.plot(ps["t"], ps[col], style, label=col)
    kind = "10 s window" if ev.history_full else "cumulative since start"
    # An open run gets here only without requests.csv's intended times.
    sent = ", from the actual send: uncorrected" if load_model(ev.meta) == "open" else ""
    ax.set_title(f"{_label(ev)}: response time percentiles (Locust, {kind}{sent})")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("response time (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, plots_dir, "latency.png")


def plot_throughput(ev: Evidence, plots_dir: Path) -> Path | None:
    """Requests/s and failures/s per interval, plus the number of users."""
    ps = per_second(ev)
    if ps is None:
        return None
    fig, (ax,) = _figure()
    ax.plot(ps["t"], ps["rps"], label="requests/s", color="#2471a3")
    ax.plot(ps["t"], ps["fps"], label="failures/s", color="#c0392b")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    users = ax.twinx()
    users.plot(ps["t"], ps["users"], color="grey", alpha=0.6, label="users")
    users.set_ylabel("users")
    users.set_ylim(bottom=0)
    lines = ax.get_lines() + users.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="lower right")
    ax.set_title(f"{_label(ev)}: throughput")
    return _save(fig, plots_dir, "throughput.png")


def plot_rss(ev: Evidence, plots_dir: Path) -> Path | None:
    """RSS over time, and RSS vs cumulative requests with the fitted slope."""
    fit = rss_fit(ev)
    if fit is None:
        return None
    pts = fit.points
    fig, (left, right) = _figure(ncols=2, width=12.0)
    left.plot(pts["t"], pts["rss_mb"], color="#7d3c98", label="RSS (sampled each second)")
    hwm = counter_total(ev, "lab_app_rss_hwm_bytes")
    if hwm is not None and float(hwm["value"].max()) > 0:
        # The kernel's high-water mark catches what the 1 s samples miss.
        left.plot(hwm["t"], hwm["value"] / 2**20, color="#7d3c98", linestyle="--",
                  label="peak RSS of the largest process (VmHWM)")  # fmt: skip
        left.legend(fontsize=8)
    left.set_title(f"{_label(ev)}: app RSS over time")
    left.set_xlabel("time since load start (s)")
    left.set_ylabel("RSS (MB)")
    left.grid(alpha=0.3)
    right.set_title(f"{_label(ev)}: RSS vs requests")
    right.set_xlabel("cumulative requests")
    right.set_ylabel("RSS (MB)")
    right.grid(alpha=0.3)
    with_req = pts.dropna(subset=["requests"])
    if not with_req.empty:
        warm = with_req.loc[~with_req["fitted"]]
        used = with_req.loc[with_req["fitted"]]
        right.scatter(warm["requests"], warm["rss_mb"], s=10, color="grey", label="warm-up")
        right.scatter(used["requests"], used["rss_mb"], s=10, color="#7d3c98", label="fitted")
        if fit.slope_mb_per_request is not None and fit.intercept_mb is not None:
            xs = np.array([used["requests"].min(), used["requests"].max()])
            ys = fit.intercept_mb + fit.slope_mb_per_request * xs
            right.plot(xs, ys, color="black", label=f"slope {fit.slope_per_10k:.3g} MB / 10k req")
        right.legend()
    else:
        right.text(0.5, 0.5, "no request counts", ha="center", transform=right.transAxes)
    return _save(fig, plots_dir, "rss.png")


def plot_event_loop_lag(ev: Evidence, plots_dir: Path) -> Path | None:
    """p99 event-loop lag of each sampling interval (bucket deltas)."""
    lag = interval_quantiles(ev, LAG_METRIC, 0.99)
    if lag is None:
        return None
    fig, (ax,) = _figure()
    ax.plot(lag["t"], lag["value"] * 1000, color="#d35400", marker=".")
    ax.set_title(f"{_label(ev)}: event-loop lag p99 per interval")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("event-loop lag p99 (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return _save(fig, plots_dir, "event_loop_lag.png")


def plot_cpu(ev: Evidence, plots_dir: Path) -> Path | None:
    """CPU% of the app tree and of Locust per interval (100% = one core)."""
    cpu = cpu_percent(ev)
    if not cpu:
        return None
    fig, (ax,) = _figure()
    for label, color in (("app", "#2471a3"), ("locust", "#c0392b")):
        if label in cpu:
            ax.plot(cpu[label]["t"], cpu[label]["value"], label=label, color=color)
    cpus = machine_cpus(ev.meta)
    if cpus is not None:
        ax.axhline(100 * cpus, color="grey", linestyle="--", label=f"{cpus} cores")
    ax.set_title(f"{_label(ev)}: CPU use, app vs load generator")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("CPU (% of one core)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, plots_dir, "cpu.png")


# --- the scenario's own signal (app metrics from metrics.csv) --------------------------------

_TIME_LABEL = "time since load start (s)"
_BREAKER_STATES = {0: "closed", 1: "half-open", 2: "open"}
# Series whose peaks differ more than this get a symlog axis, so that 3 errors/s
# next to 3000 hits/s stay visible.
_SYMLOG_SPAN = 30.0
_STATUS_COLORS = {
    "2": ["#1e8449", "#52be80", "#0e6251", "#7dcea0"],
    "3": ["#7f8c8d", "#aab7b8"],
    "4": ["#e67e22", "#f5b041", "#a04000", "#f8c471"],
    "5": ["#c0392b", "#8e44ad", "#641e16", "#ec7063"],
}


@dataclass
class CounterIncrease:
    """A counter's increase over each interval between samples of the load window."""

    deltas: pd.DataFrame  # index: t at the end of the interval; one column per label group
    dt: pd.Series  # length of each interval (s), same index

    @property
    def rates(self) -> pd.DataFrame:
        return self.deltas.div(self.dt, axis=0)

    @property
    def totals(self) -> pd.Series:
        return self.deltas.sum()


def _scrape_times(ev: Evidence) -> pd.Series | None:
    """`t` of each sample of the load window, indexed by `ts` (sorted).

    The app's scrapes (names not starting with `lab_`) when there are any: the
    runner's own samples may be taken at other instants.
    """
    metrics = ev.metrics
    if metrics is None:
        return None
    rows = ev.in_window(metrics.dropna(subset=["t"]))
    app_rows = rows.loc[~rows["name"].str.startswith("lab_")]
    if not app_rows.empty:
        rows = app_rows
    if rows.empty:
        return None
    return rows.groupby("ts")["t"].first().sort_index()


def _label_value(labels: str, key: str) -> str:
    for pair in labels.split("|"):
        k, sep, v = pair.partition("=")
        if sep and k == key:
            return v
    return "?"


def _group_key(labels: str, by: Sequence[str]) -> str:
    return "/".join(_label_value(labels, key) for key in by) if by else "total"


def _table(
    ev: Evidence, name: str, grid: pd.Series, exclude_route: str | None
) -> pd.DataFrame | None:
    """Values of each label set of a metric on the sample grid (NaN where absent)."""
    metrics = ev.metrics
    if metrics is None:
        return None
    rows = metrics.loc[(metrics["name"] == name) & metrics["ts"].isin(grid.index)]
    if exclude_route is not None:
        rows = rows.loc[rows["labels"].map(lambda s: _label_value(s, "route")) != exclude_route]
    if rows.empty:
        return None
    table = rows.pivot_table(index="ts", columns="labels", values="value", aggfunc="last")
    return table.reindex(grid.index)


def _by_group(table: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    keys = [_group_key(str(col), by) for col in table.columns]
    grouped = table.T.groupby(keys).sum(min_count=1).T
    return grouped.loc[:, sorted(grouped.columns)]


def counter_increase_by(
    ev: Evidence, name: str, by: Sequence[str] = (), exclude_route: str | None = None
) -> CounterIncrease | None:
    """Increase of a counter between consecutive samples of the load window, per
    value of the labels `by` (joined by "/"; one column "total" without `by`).

    Deltas are taken per label set first: a series absent from the window's first
    sample was born during the load and started from 0. A negative delta (a counter
    reset) gives NaN.
    """
    grid = _scrape_times(ev)
    if grid is None or len(grid) < 2:
        return None
    table = _table(ev, name, grid, exclude_route)
    if table is None:
        return None
    born = table.iloc[0].isna()
    seen = table.notna().cummax()
    table.loc[:, born] = table.loc[:, born].where(seen.loc[:, born], 0.0)
    deltas = table.ffill().diff().iloc[1:]
    deltas = _by_group(deltas.where(deltas >= 0), by)
    index = pd.Index(grid.iloc[1:].to_numpy(dtype=float), name="t")
    deltas.index = index
    dt = pd.Series(np.diff(grid.index.to_numpy(dtype=float)), index=index)
    return CounterIncrease(deltas=deltas, dt=dt)


def counter_rates(
    ev: Evidence, name: str, by: Sequence[str] = (), exclude_route: str | None = None
) -> pd.DataFrame | None:
    """Per-second increase of a counter (see `counter_increase_by`); index `t`."""
    inc = counter_increase_by(ev, name, by, exclude_route)
    return None if inc is None else inc.rates


def gauge_values(ev: Evidence, name: str, by: Sequence[str] = ()) -> pd.DataFrame | None:
    """A gauge on the samples of the load window, summed over label sets per value of `by`.

    Index: `t`; one column per group (see `counter_increase_by`).
    """
    grid = _scrape_times(ev)
    if grid is None:
        return None
    table = _table(ev, name, grid, None)
    if table is None:
        return None
    values = _by_group(table, by).dropna(how="all")
    values.index = pd.Index(grid.reindex(values.index).to_numpy(dtype=float), name="t")
    return values


def _has_signal(frame: pd.DataFrame | pd.Series | None) -> bool:
    """Some finite non-zero value."""
    if frame is None or frame.empty:
        return False
    values = frame.to_numpy(dtype=float)
    return bool((np.isfinite(values) & (values != 0)).any())


def _stack(nrows: int, width: float = 9.0, row_height: float = 2.8) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, 0.6 + row_height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, 1, squeeze=False, sharex=True)
    return fig, [row[0] for row in axes]


def _status_colors(codes: Sequence[str]) -> dict[str, str]:
    used: dict[str, int] = {}
    out: dict[str, str] = {}
    for code in codes:
        palette = _STATUS_COLORS.get(code[:1], ["#34495e", "#95a5a6"])
        i = used.get(code[:1], 0)
        used[code[:1]] = i + 1
        out[code] = palette[i % len(palette)]
    return out


def _rate_lines(ax: Axes, inc: CounterIncrease, colors: Mapping[str, str] | None = None) -> None:
    """One line per group of a counter's per-second rate; legend with window totals;
    symlog y axis when the groups differ by orders of magnitude."""
    rates = inc.rates
    totals = inc.totals
    for col in rates.columns:
        series = rates[col].dropna()
        color = colors.get(str(col)) if colors else None
        label = f"{col} ({totals[col]:,.0f} in the window)"
        ax.plot(series.index, series.to_numpy(), marker=".", color=color, label=label)
    peaks = rates.max().dropna()
    peaks = peaks.loc[peaks > 0]
    if len(peaks) > 1 and peaks.max() / peaks.min() > _SYMLOG_SPAN:
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("(symlog scale)")
    ax.legend(fontsize=8, loc="best")


def _finish(ax: Axes, title: str, ylabel: str, *, bottom: bool = True) -> None:
    ax.set_title(title, fontsize=10)
    scale = ax.get_ylabel()
    ax.set_ylabel(f"{ylabel} {scale}".strip())
    if bottom:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in the load window", ha="center", transform=ax.transAxes)


def _ratio(
    num: CounterIncrease | None, den: CounterIncrease | None, scale: float = 1.0
) -> pd.Series:
    """num/den per interval, summed over groups; NaN where the denominator is 0."""
    if num is None or den is None:
        return pd.Series(dtype=float)
    n = num.deltas.sum(axis=1, min_count=1)
    d = den.deltas.sum(axis=1, min_count=1).reindex(n.index)
    return (scale * n / d.where(d > 0)).dropna()


def _db_panels(
    axes: Sequence[Axes], per_request: pd.Series, share: pd.Series, pool: pd.DataFrame | None
) -> None:
    top, mid, low = axes
    if per_request.empty:
        _no_data(top, "requests")
    top.plot(per_request.index, per_request.to_numpy(), marker=".", color="#2471a3")
    _finish(top, "SQL statements per request (per interval)", "queries / request")
    if share.empty:
        _no_data(mid, "request time")
    mid.plot(share.index, share.to_numpy(), marker=".", color="#d35400")
    _finish(mid, "DB time as a share of request time (per interval)", "DB / request time (%)")
    if pool is None:
        _no_data(low, "pool samples")
    else:
        low.step(pool.index, pool.sum(axis=1).to_numpy(), where="post", color="#7d3c98")
        low.axhline(0, color="grey", linewidth=0.8)
    # No floor at 0: a negative gauge is an instrumentation bug worth seeing.
    _finish(low, "connections checked out of the pool", "connections", bottom=False)
    low.set_xlabel(_TIME_LABEL)


def plot_database(ev: Evidence, plots_dir: Path) -> Path | None:
    """Queries per request, DB share of request time and pool connections over time."""
    q_sum = counter_increase_by(ev, "db_queries_per_request_sum")
    q_count = counter_increase_by(ev, "db_queries_per_request_count")
    db_time = counter_increase_by(ev, "db_query_duration_seconds_sum")
    req_time = counter_increase_by(
        ev, "http_request_duration_seconds_sum", exclude_route="/metrics"
    )
    pool = gauge_values(ev, "db_pool_checked_out")
    # Requests counted with 0 queries are not DB activity: q_count alone is no signal.
    active = [_has_signal(inc.deltas) for inc in (q_sum, db_time) if inc is not None]
    if not any(active) and not _has_signal(pool):
        return None
    fig, axes = _stack(3)
    fig.suptitle(f"{_label(ev)}: database")
    _db_panels(axes, _ratio(q_sum, q_count), _ratio(db_time, req_time, scale=100.0), pool)
    return _save(fig, plots_dir, "database.png")


def plot_upstream(ev: Evidence, plots_dir: Path) -> Path | None:
    """Upstream calls per second by dependency/outcome, and the circuit breaker's state."""
    calls = counter_increase_by(
        ev, "upstream_request_duration_seconds_count", by=("dependency", "outcome")
    )
    breaker = gauge_values(ev, "circuit_breaker_state", by=("dependency",))
    has_calls = calls is not None and _has_signal(calls.deltas)
    if not has_calls and not _has_signal(breaker):
        return None
    fig, axes = _stack(2 if breaker is not None else 1)
    fig.suptitle(f"{_label(ev)}: upstream calls")
    if calls is None or not has_calls:
        _no_data(axes[0], "upstream calls")
    else:
        _rate_lines(axes[0], calls)
    _finish(axes[0], "calls per second by dependency/outcome", "calls / s")
    if breaker is not None:
        for col in breaker.columns:
            series = breaker[col].dropna()
            axes[1].step(series.index, series.to_numpy(), where="post", label=str(col))
        axes[1].set_yticks(list(_BREAKER_STATES), list(_BREAKER_STATES.values()))
        axes[1].set_ylim(-0.2, 2.2)
        axes[1].legend(fontsize=8, loc="best")
        _finish(axes[1], "circuit breaker state by dependency", "state", bottom=False)
    axes[-1].set_xlabel(_TIME_LABEL)
    return _save(fig, plots_dir, "upstream.png")


def plot_cache(ev: Evidence, plots_dir: Path) -> Path | None:
    """Cache look-ups per second by cache/result, and entries held by each cache."""
    lookups = counter_increase_by(ev, "cache_requests_total", by=("cache", "result"))
    entries = gauge_values(ev, "cache_entries", by=("cache",))
    has_lookups = lookups is not None and _has_signal(lookups.deltas)
    if not has_lookups and not _has_signal(entries):
        return None
    fig, (top, low) = _stack(2)
    fig.suptitle(f"{_label(ev)}: cache")
    if lookups is None or not has_lookups:
        _no_data(top, "cache look-ups")
    else:
        _rate_lines(top, lookups)
    _finish(top, "look-ups per second by cache/result", "look-ups / s")
    if entries is None:
        _no_data(low, "cache_entries samples")
    else:
        for col in entries.columns:
            series = entries[col].dropna()
            low.step(series.index, series.to_numpy(), where="post", label=str(col))
        low.legend(fontsize=8, loc="best")
    _finish(low, "entries held by each cache", "entries")
    low.set_xlabel(_TIME_LABEL)
    return _save(fig, plots_dir, "cache.png")


def _drop_silent(inc: CounterIncrease) -> CounterIncrease:
    keep = [c for c in inc.deltas.columns if _has_signal(inc.deltas[c])]
    return CounterIncrease(deltas=inc.deltas.loc[:, keep], dt=inc.dt)


def plot_status(ev: Evidence, plots_dir: Path) -> Path | None:
    """Responses per second by HTTP status, from the app's counter (without /metrics)."""
    inc = counter_increase_by(ev, "http_requests_total", by=("status",), exclude_route="/metrics")
    if inc is None or not _has_signal(inc.deltas):
        return None
    inc = _drop_silent(inc)
    fig, (ax,) = _figure()
    _rate_lines(ax, inc, colors=_status_colors([str(c) for c in inc.deltas.columns]))
    ax.set_xlabel(_TIME_LABEL)
    _finish(ax, f"{_label(ev)}: responses per second by status (app)", "responses / s")
    ax.title.set_fontsize(12)
    return _save(fig, plots_dir, "status.png")


def plot_work(ev: Evidence, plots_dir: Path) -> Path | None:
    """Batch work items processed per second by kind/outcome."""
    inc = counter_increase_by(ev, "work_items_total", by=("kind", "outcome"))
    if inc is None or not _has_signal(inc.deltas):
        return None
    fig, (ax,) = _figure()
    _rate_lines(ax, _drop_silent(inc))
    ax.set_xlabel(_TIME_LABEL)
    _finish(ax, f"{_label(ev)}: work items per second by kind/outcome", "items / s")
    ax.title.set_fontsize(12)
    return _save(fig, plots_dir, "work.png")


def plot_etl(ev: Evidence, plots_dir: Path) -> Path | None:
    """ETL rows read and committed per second; in the title, the duplicates left."""
    inc = counter_increase_by(ev, "etl_rows_total", by=("outcome",))
    if inc is None or not _has_signal(inc.deltas):
        return None
    duplicates = counter_increase_by(ev, "etl_duplicate_rows_total")
    dup_total = 0.0 if duplicates is None else float(duplicates.totals.sum())
    fig, (ax,) = _figure()
    _rate_lines(ax, _drop_silent(inc))
    ax.set_xlabel(_TIME_LABEL)
    _finish(ax, f"{_label(ev)}: ETL rows per second; {dup_total:,.0f} rows written twice",
            "rows / s")  # fmt: skip
    ax.title.set_fontsize(12)
    return _save(fig, plots_dir, "etl.png")


# tab10 without its red, which marks the failures.
_ROUTE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def plot_requests(ev: Evidence, plots_dir: Path) -> Path | None:
    """Every request as a dot (requests.csv): when it started, how long it took, by route.

    What percentiles hide shows here: a stall every few seconds, two populations
    (cache hits and misses), a warm-up, failures (red crosses) at a cliff.
    """
    frame = ev.requests
    if frame is None or frame.empty:
        return None
    start = ev.load_start_ts if ev.load_start_ts is not None else float(frame["start"].min())
    t = frame["start"] - start
    ms = frame["ms"].clip(lower=0.01)  # log scale
    counts = frame["name"].value_counts()
    shown = list(counts.index[: len(_ROUTE_COLORS)])
    fig, (ax,) = _figure(height=4.8)
    for name, color in zip(shown, _ROUTE_COLORS, strict=False):
        rows = frame["name"] == name
        label = f"{name} ({counts[name]:,})"
        ax.scatter(t[rows], ms[rows], s=4, alpha=0.35, linewidths=0, color=color, label=label)
    rest = ~frame["name"].isin(shown)
    if rest.any():
        ax.scatter(t[rest], ms[rest], s=4, alpha=0.35, linewidths=0, color="grey",
                   label=f"other routes ({int(rest.sum()):,})")  # fmt: skip
    if "ok" in frame.columns:
        failed = frame["ok"] == 0
        if failed.any():
            ax.scatter(t[failed], ms[failed], s=14, marker="x", color="red",
                       label=f"failed ({int(failed.sum()):,})")  # fmt: skip
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel(_TIME_LABEL)
    ax.set_ylabel("response time (ms, log scale)")
    ax.set_title(f"{_label(ev)}: every request ({len(frame):,})", fontsize=12)
    ax.grid(alpha=0.3, which="both")
    legend = ax.legend(fontsize=8, markerscale=3, loc="upper left")
    for handle in legend.legend_handles:
        if handle is not None:
            handle.set_alpha(1)
    return _save(fig, plots_dir, "requests.png")


_RELEASE_COLORS = {"blue": "#2471a3", "green": "#1e8449"}
_ROLLOUT_MARKS = {  # timeline event -> how it is marked on the plot
    "deploy started": ("deploy", "grey"),
    "switched": ("switched to {to}", "black"),
    "gate refused": ("gate refused", "#d35400"),
    "rolling back": ("rolling back", "#c0392b"),
}


def _rollout(run_dir: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads((run_dir / "rollout.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plot_rollout(ev: Evidence, plots_dir: Path) -> Path | None:
    """A release scenario's deploy: what each release answered per second, and the
    failures (status >= 500) in red, from nginx's log; the deploy's steps as lines."""
    from .formats import ProxyLog

    lines = ProxyLog(ev.run_dir / ProxyLog.NAME).read()
    rollout = _rollout(ev.run_dir)
    if not lines or rollout is None:
        return None
    start = ev.load_start_ts if ev.load_start_ts is not None else min(x.ts for x in lines)
    app = ev.meta.get("app") or {}
    names = {f"127.0.0.1:{app.get('port')}": "blue"}
    for event in rollout.get("timeline", []):
        if event.get("event") == "started":
            names[f"127.0.0.1:{event.get('port')}"] = str(event.get("instance"))
    frame = pd.DataFrame({
        "s": [int(x.ts - start) for x in lines],
        "release": [names.get(x.upstream, x.upstream) for x in lines],
        "failed": [x.status >= 500 for x in lines],
    })  # fmt: skip
    fig, (ax,) = _figure(height=4.4)
    seconds = range(int(frame["s"].min()), int(frame["s"].max()) + 1)
    for release, rows in frame.groupby("release"):
        # Every second, 0 where the release answered nothing (it was not live).
        per_s = rows.groupby("s").size().reindex(seconds, fill_value=0)
        ax.plot(per_s.index, per_s.to_numpy(), color=_RELEASE_COLORS.get(str(release), "grey"),
                label=f"answered by {release} ({len(rows):,})")  # fmt: skip
    failed = frame[frame["failed"]].groupby("s").size()
    if not failed.empty:
        ax.bar(failed.index, failed.to_numpy(), width=0.9, color="#c0392b", alpha=0.6,
               label=f"failed, status >= 500 ({int(failed.sum()):,})")  # fmt: skip
    for event in rollout.get("timeline", []):
        mark = _ROLLOUT_MARKS.get(str(event.get("event")))
        if mark is None or not isinstance(event.get("ts"), int | float):
            continue
        text, color = mark
        t = float(event["ts"]) - start
        ax.axvline(t, color=color, linestyle="--", linewidth=1)
        ax.text(t, 1.0, " " + text.format(to=event.get("to", "")), rotation=90, va="top",
                ha="left", fontsize=8, color=color, transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_xlabel(_TIME_LABEL)
    outcome = rollout.get("outcome") or "not run"
    _finish(ax, f"{_label(ev)}: requests per second by release (nginx), deploy {outcome}",
            "requests / s")  # fmt: skip
    ax.title.set_fontsize(12)
    return _save(fig, plots_dir, "rollout.png")


# Every plot of one run, by the file it writes: the report draws them in this order.
RUN_PLOTS: list[tuple[str, Callable[[Evidence, Path], Path | None]]] = [
    ("rollout.png", plot_rollout),
    ("latency.png", plot_latency),
    ("requests.png", plot_requests),
    ("throughput.png", plot_throughput),
    ("rss.png", plot_rss),
    ("event_loop_lag.png", plot_event_loop_lag),
    ("cpu.png", plot_cpu),
    ("status.png", plot_status),
    ("database.png", plot_database),
    ("upstream.png", plot_upstream),
    ("cache.png", plot_cache),
    ("work.png", plot_work),
    ("etl.png", plot_etl),
]


def run_plots(ev: Evidence, plots_dir: Path) -> list[Path]:
    """All the plots of one run that have data."""
    return [p for p in (make(ev, plots_dir) for _, make in RUN_PLOTS) if p is not None]


# --- comparison -----------------------------------------------------------------------------


def _pairs(before: Evidence, after: Evidence) -> list[tuple[str, Evidence]]:
    return [("before", before), ("after", after)]


_CDF_LEVELS = (*range(0, 100), 99.5, 99.9, 100)


def _percentile_curve(ev: Evidence) -> tuple[list[float], list[float]] | None:
    """(ms, percentile) points: exact from requests.csv (in an open run from the
    intended send time, as the summary's percentiles), else Locust's rounded columns
    (never for an open run: they are from the actual send)."""
    latencies = request_latencies(ev)
    if latencies is not None:
        levels = list(map(float, _CDF_LEVELS))
        ms = exact_quantiles(latencies["ms"], [level / 100 for level in levels])
        return [max(x, 0.01) for x in ms], levels
    agg = ev.aggregated
    if agg is None or load_model(ev.meta) == "open":
        return None
    xs: list[float] = []
    ys: list[float] = []
    low = agg.get("Min Response Time")
    if low is not None and math.isfinite(low) and low > 0:
        xs.append(low)
        ys.append(0.0)
    for col in PERCENTILE_COLUMNS:
        value = agg.get(col)
        if value is not None and math.isfinite(value):
            xs.append(value)
            ys.append(float(col.rstrip("%")))
    return (xs, ys) if xs else None


def plot_latency_cdf(before: Evidence, after: Evidence, plots_dir: Path) -> Path | None:
    """Latency CDF of both runs: every request (requests.csv), or Locust's percentile columns."""
    curves = [(name, ev, _percentile_curve(ev)) for name, ev in _pairs(before, after)]
    if all(c is None for _, _, c in curves):
        return None
    fig, (ax,) = _figure()
    for name, ev, curve in curves:
        if curve is not None:
            ax.step(
                curve[0],
                curve[1],
                where="post",
                marker="o",
                markersize=3,
                color=_COLORS[name],
                label=f"{name}: {_label(ev)}",
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title("Latency distribution (all requests; an open run's from the intended send)")
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_ylabel("percentile (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, plots_dir, "latency_cdf.png")


def plot_metric_bars(
    before: Mapping[str, Any], after: Mapping[str, Any], plots_dir: Path
) -> Path | None:
    """One small bar chart per key metric, before vs after."""
    items = [
        (m.name, m.short or m.title, finite(before.get(m.name)), finite(after.get(m.name)))
        for m in BAR_METRICS
    ]
    items = [it for it in items if it[2] is not None or it[3] is not None]
    if not items:
        return None
    ncols = 4
    nrows = -(-len(items) // ncols)
    fig = Figure(figsize=(12.0, 2.8 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    flat = [ax for row in grid for ax in row]
    for ax, (_key, label, b, a) in zip(flat, items, strict=False):
        values = [b if b is not None else 0.0, a if a is not None else 0.0]
        bars = ax.bar(["before", "after"], values, color=[_COLORS["before"], _COLORS["after"]])
        for bar, raw in zip(bars, (b, a), strict=True):
            text = "n/a" if raw is None else f"{raw:.3g}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(label, fontsize=10)
        ax.margins(y=0.15)
    for ax in flat[len(items) :]:
        ax.set_visible(False)
    fig.suptitle("Key metrics, before vs after")
    return _save(fig, plots_dir, "metrics_bars.png")


def plot_compare_rss(before: Evidence, after: Evidence, plots_dir: Path) -> Path | None:
    """RSS vs cumulative requests of both runs, with their fitted slopes."""
    fits = [(name, ev, rss_fit(ev)) for name, ev in _pairs(before, after)]
    if all(f is None or f.points["requests"].notna().sum() == 0 for _, _, f in fits):
        return None
    fig, (ax,) = _figure()
    for name, ev, fit in fits:
        if fit is None:
            continue
        pts = fit.points.dropna(subset=["requests"])
        ax.scatter(
            pts["requests"],
            pts["rss_mb"],
            s=8,
            color=_COLORS[name],
            alpha=0.6,
            label=f"{name}: {_label(ev)}",
        )
        if fit.slope_mb_per_request is not None and fit.intercept_mb is not None:
            used = fit.fitted
            xs = np.array([used["requests"].min(), used["requests"].max()])
            ax.plot(
                xs,
                fit.intercept_mb + fit.slope_mb_per_request * xs,
                color=_COLORS[name],
                label=f"{name} slope {fit.slope_per_10k:.3g} MB / 10k req",
            )
    ax.set_title("App RSS vs cumulative requests")
    ax.set_xlabel("cumulative requests")
    ax.set_ylabel("RSS (MB)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, plots_dir, "rss_compare.png")


def plot_compare_latency_over_time(
    before: Evidence, after: Evidence, plots_dir: Path
) -> Path | None:
    """p50 and p95 over time of both runs: Locust's history, or an open run's
    requests.csv from the intended send time (what its summary reports)."""
    series = [(name, ev, _latency_over_time(ev)) for name, ev in _pairs(before, after)]
    if all(ps is None for _, _, ps in series):
        return None
    fig, (ax,) = _figure()
    for name, _ev, ps in series:
        if ps is None:
            continue
        ax.plot(ps["t"], ps["p95"], color=_COLORS[name], label=f"{name} p95")
        ax.plot(ps["t"], ps["p50"], color=_COLORS[name], linestyle=":", label=f"{name} p50")
    ax.set_title("Response time over time (Locust; an open run's from the intended send)")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("response time (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, plots_dir, "latency_compare.png")


def _latency_over_time(ev: Evidence) -> pd.DataFrame | None:
    if load_model(ev.meta) == "open":
        return per_second_percentiles(ev, corrected=True)
    return per_second(ev)


def compare_plots(
    before: Evidence,
    after: Evidence,
    before_summary: Mapping[str, Any],
    after_summary: Mapping[str, Any],
    plots_dir: Path,
) -> list[Path]:
    """All the comparison plots that have data."""
    made = [
        plot_latency_cdf(before, after, plots_dir),
        plot_metric_bars(before_summary, after_summary, plots_dir),
        plot_compare_rss(before, after, plots_dir),
        plot_compare_latency_over_time(before, after, plots_dir),
    ]
    return [p for p in made if p is not None]
