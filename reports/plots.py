"""Plots of a run and of a comparison (matplotlib, Agg canvas, no pyplot state).

Each function writes one PNG and returns its path, or returns None (writing
nothing) when its data is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .evidence import PERCENTILE_COLUMNS, Evidence
from .series import (
    LAG_METRIC,
    cpu_percent,
    interval_quantiles,
    per_second,
    rss_fit,
)

__all__ = [
    "compare_plots",
    "plot_compare_latency_over_time",
    "plot_compare_rss",
    "plot_cpu",
    "plot_event_loop_lag",
    "plot_latency",
    "plot_latency_cdf",
    "plot_metric_bars",
    "plot_rss",
    "plot_throughput",
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


def plot_latency(ev: Evidence, plots_dir: Path) -> Path | None:
    """p50/p95/p99 over time from Locust's history."""
    ps = per_second(ev)
    if ps is None or ps[["p50", "p95", "p99"]].notna().sum().sum() == 0:
        return None
    fig, (ax,) = _figure()
    for col, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        ax.plot(ps["t"], ps[col], style, label=col)
    kind = "10 s window" if ev.history_full else "cumulative since start"
    ax.set_title(f"{_label(ev)}: response time percentiles (Locust, {kind})")
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
    left.plot(pts["t"], pts["rss_mb"], color="#7d3c98")
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
    machine = ev.meta.get("machine")
    cpus = machine.get("cpus") if isinstance(machine, Mapping) else None
    if isinstance(cpus, int) and cpus > 0:
        ax.axhline(100 * cpus, color="grey", linestyle="--", label=f"{cpus} cores")
    ax.set_title(f"{_label(ev)}: CPU use, app vs load generator")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("CPU (% of one core)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, plots_dir, "cpu.png")


def run_plots(ev: Evidence, plots_dir: Path) -> list[Path]:
    """All the plots of one run that have data."""
    makers = (plot_latency, plot_throughput, plot_rss, plot_event_loop_lag, plot_cpu)
    return [p for p in (make(ev, plots_dir) for make in makers) if p is not None]


# --- comparison -----------------------------------------------------------------------------


def _pairs(before: Evidence, after: Evidence) -> list[tuple[str, Evidence]]:
    return [("before", before), ("after", after)]


def _percentile_curve(ev: Evidence) -> tuple[list[float], list[float]] | None:
    agg = ev.aggregated
    if agg is None:
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
    """Latency CDF of both runs from the Aggregated percentile columns of locust_stats.csv."""
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
    ax.set_title("Latency distribution (Locust, all requests)")
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_ylabel("percentile (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, plots_dir, "latency_cdf.png")


_BAR_METRICS = [
    ("rps", "requests/s"),
    ("p95_ms", "p95 (ms)"),
    ("p99_ms", "p99 (ms)"),
    ("error_rate", "error rate"),
    ("rss_slope_mb_per_10k_requests", "RSS slope (MB/10k req)"),
    ("rss_end_mb", "RSS end (MB)"),
    ("event_loop_lag_p99_ms", "loop lag p99 (ms)"),
    ("app_cpu_ms_per_request", "app CPU (ms/req)"),
]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def plot_metric_bars(
    before: Mapping[str, Any], after: Mapping[str, Any], plots_dir: Path
) -> Path | None:
    """One small bar chart per key metric, before vs after."""
    items = [
        (key, label, _finite(before.get(key)), _finite(after.get(key)))
        for key, label in _BAR_METRICS
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
    """p50 and p95 over time of both runs."""
    series = [(name, ev, per_second(ev)) for name, ev in _pairs(before, after)]
    if all(ps is None for _, _, ps in series):
        return None
    fig, (ax,) = _figure()
    for name, _ev, ps in series:
        if ps is None:
            continue
        ax.plot(ps["t"], ps["p95"], color=_COLORS[name], label=f"{name} p95")
        ax.plot(ps["t"], ps["p50"], color=_COLORS[name], linestyle=":", label=f"{name} p50")
    ax.set_title("Response time over time (Locust)")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("response time (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, plots_dir, "latency_compare.png")


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
