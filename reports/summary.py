"""The numbers of one run (`summary.json`), computed from the run dir alone."""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .evidence import Evidence, counter_increase, counter_total, load_evidence
from .series import (
    LAG_METRIC,
    MB,
    REQUESTS_METRIC,
    SERVER_DURATION_METRIC,
    rss_fit,
    window_quantile,
)

__all__ = [
    "SUMMARY_FIELDS",
    "evaluate_symptom",
    "load_or_build_summary",
    "summarize",
    "summarize_evidence",
    "write_summary",
]

SUMMARY_FIELDS = [
    "run_id",
    "scenario",
    "variant",
    "status",
    "duration_s",
    "requests",
    "failures",
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "percentiles_from",
    "error_rate",
    "rss_start_mb",
    "rss_end_mb",
    "rss_peak_mb",
    "rss_slope_mb_per_10k_requests",
    "rss_growth_mb",
    "peak_rss_mb",
    "peak_rss_growth_mb",
    "event_loop_lag_p99_ms",
    "server_p95_ms",
    "app_cpu_seconds",
    "locust_cpu_seconds",
    "app_cpu_ms_per_request",
    "app_cpu_cores",
    "db_time_share",
    "db_queries_per_request",
    "upstream_calls_per_request",
    "responses_by_status",
    "unhandled_error_rate",
    "db_pool_checked_out_end",
    "work_items_per_second",
    "work_items_rejected",
    "etl_jobs_completed",
    "etl_rows_extracted",
    "etl_rows_loaded",
    "etl_duplicate_rows",
    "routes",
    "symptom",
    "notes",
]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _num(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _div(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return _num(num / den)


def _route_value(summary: Mapping[str, Any], route: str, metric: str) -> float | None:
    routes = summary.get("routes") or {}
    numbers = routes.get(route) if isinstance(routes, Mapping) else None
    return _num(numbers.get(metric)) if isinstance(numbers, Mapping) else None


def evaluate_symptom(spec: Any, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """Evaluate meta.json's symptom spec against the summary. None without a valid spec.

    The spec names a summary field (`metric`), or a field of one Locust request
    name (`route`, looked up in `summary["routes"]`), optionally divided by the
    same field of another (`baseline_route`): "deep page p50 / first page p50".
    """
    if not isinstance(spec, Mapping):
        return None
    metric = spec.get("metric")
    op = spec.get("op")
    threshold = _num(spec.get("threshold"))
    if not isinstance(metric, str) or op not in _OPERATORS or threshold is None:
        return None
    route, baseline = spec.get("route"), spec.get("baseline_route")
    value = _route_value(summary, route, metric) if route else _num(summary.get(metric))
    name = f"{metric} of {route}" if route else metric
    if baseline:
        value = _div(value, _route_value(summary, baseline, metric))
        name = f"{name} / {metric} of {baseline}"
    present = value is not None and _OPERATORS[op](value, threshold)
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "op": op,
        "present": bool(present),
        "description": str(spec.get("description") or ""),
    }


def _locust_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    agg = ev.aggregated
    if agg is None:
        notes.append("no Locust totals: requests, latency percentiles and rps are unknown")
        return
    out["requests"] = _num(agg.get("Request Count"))
    out["failures"] = _num(agg.get("Failure Count"))
    for key, col in (("p50_ms", "50%"), ("p95_ms", "95%"), ("p99_ms", "99%")):
        out[key] = _num(agg.get(col))
    out["percentiles_from"] = "locust_stats.csv"
    out["max_ms"] = _num(agg.get("Max Response Time"))
    if out["p50_ms"] is None and out["requests"]:
        out["p50_ms"] = _num(agg.get("Median Response Time"))
    if out["requests"] is not None:
        out["requests"] = int(out["requests"])
    if out["failures"] is not None:
        out["failures"] = int(out["failures"])
    out["error_rate"] = _div(out["failures"], out["requests"])
    out["rps"] = _div(out["requests"], out["duration_s"])
    out["routes"] = _routes(ev)
    _exact_percentiles(ev, out)


def _cell(row: Any, column: str) -> float | None:
    """A CSV cell as a finite float ("N/A" and blanks are None)."""
    try:
        return _num(float(row.get(column)))
    except (TypeError, ValueError):
        return None


def _routes(ev: Evidence) -> dict[str, dict[str, Any]] | None:
    """Locust's numbers per request name: the cheap endpoint that suffers next to a slow one."""
    stats = ev.stats
    if stats is None or "Name" not in stats.columns:
        return None
    routes: dict[str, dict[str, Any]] = {}
    for _, row in stats.iterrows():
        if row.get("Name") == "Aggregated":
            continue
        key = f"{row.get('Type')} {row.get('Name')}"
        routes[key] = {
            "requests": int(_cell(row, "Request Count") or 0),
            "failures": int(_cell(row, "Failure Count") or 0),
            "p50_ms": _cell(row, "50%"),
            "p95_ms": _cell(row, "95%"),
            "p99_ms": _cell(row, "99%"),
        }
    return routes or None


_PERCENTILES = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def _exact_percentiles(ev: Evidence, out: dict[str, Any]) -> None:
    """Percentiles from requests.csv, one row per request, where Locust rounds.

    Locust buckets response times (to 1 ms below 100 ms, 10 ms below 1 s), which
    is noise when one fast route divides another. Same definition as Locust's
    (the smallest time at or above which that share of requests falls), exact.
    """
    frame = ev.requests
    if frame is None:
        return
    for key, q in _PERCENTILES:
        out[key] = _quantile(frame["ms"], q)
    routes = out.get("routes") or {}
    for name, group in frame.groupby("name")["ms"]:
        if name in routes:
            for key, q in _PERCENTILES:
                routes[name][key] = _quantile(group, q)
    out["percentiles_from"] = "requests.csv"


def _quantile(values: pd.Series, q: float) -> float | None:
    return _num(float(np.quantile(values.to_numpy(), q, method="inverted_cdf")))


def _rss_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    rss = counter_total(ev, "lab_app_rss_bytes")
    if rss is None:
        notes.append("no lab_app_rss_bytes samples in the load window: RSS unknown")
        return
    mb = rss["value"] / MB
    out["rss_start_mb"] = _num(float(mb.iloc[0]))
    out["rss_end_mb"] = _num(float(mb.iloc[-1]))
    out["rss_peak_mb"] = _num(float(mb.max()))
    # How far above its starting point the app went: a spike, where the slope is a trend.
    out["rss_growth_mb"] = _num(float(mb.max() - mb.iloc[0]))
    # The kernel's high-water mark of the largest app process: catches spikes
    # shorter than the sampling interval (a buffered upload, a big response).
    hwm = counter_total(ev, "lab_app_rss_hwm_bytes")
    if hwm is not None and float(hwm["value"].max()) > 0:
        peak = hwm["value"] / MB
        out["peak_rss_mb"] = _num(float(peak.max()))
        out["peak_rss_growth_mb"] = _num(float(peak.max() - peak.iloc[0]))
    fit = rss_fit(ev)
    if fit is None or fit.source is None:
        notes.append("no request counts (http_requests_total or Locust history): RSS slope unknown")
    elif fit.slope_per_10k is None:
        notes.append(
            f"{len(fit.fitted)} RSS samples after the warm-up (need 4): RSS slope not computed"
        )
    else:
        out["rss_slope_mb_per_10k_requests"] = _num(fit.slope_per_10k)
        if fit.source != REQUESTS_METRIC:
            notes.append(f"RSS slope uses request counts from {fit.source}")


def _delta(ev: Evidence, name: str, exclude_route: str | None = None) -> float | None:
    """How much a cumulative metric (a counter, a histogram's _sum/_count) grew under load."""
    return _num(counter_increase(ev, name, exclude_route))


def _app_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    lag = window_quantile(ev, LAG_METRIC, 0.99)
    out["event_loop_lag_p99_ms"] = None if lag is None else _num(lag * 1000)
    if lag is None:
        notes.append(f"{LAG_METRIC}: fewer than 2 samples or no observations in the load window")
    server = window_quantile(ev, SERVER_DURATION_METRIC, 0.95, exclude_route="/metrics")
    out["server_p95_ms"] = None if server is None else _num(server * 1000)
    if server is None:
        notes.append(
            f"{SERVER_DURATION_METRIC}: fewer than 2 samples or no observations in the load window"
        )
    out["app_cpu_seconds"] = _delta(ev, "lab_app_cpu_seconds_total")
    out["locust_cpu_seconds"] = _delta(ev, "lab_locust_cpu_seconds_total")
    if out["app_cpu_seconds"] is None:
        notes.append("lab_app_cpu_seconds_total: fewer than 2 samples in the load window")
    if out["locust_cpu_seconds"] is None:
        notes.append("lab_locust_cpu_seconds_total: fewer than 2 samples in the load window")
    cpu = out["app_cpu_seconds"]
    out["app_cpu_ms_per_request"] = _div(None if cpu is None else cpu * 1000, out["requests"])
    # Cores the app kept busy on average: one process of Python cannot go past 1.
    out["app_cpu_cores"] = _div(cpu, out.get("duration_s"))
    _diagnosis_numbers(ev, out)
    _etl_numbers(ev, out)


def _etl_numbers(ev: Evidence, out: dict[str, Any]) -> None:
    """ETL jobs in the load window: jobs finished, rows read and rows committed (by
    finished and unfinished jobs), rows the finished jobs' targets hold twice.
    None when no job finished."""
    completed = counter_increase(ev, "etl_job_attempts_total", label_filter="outcome=completed")
    if not completed:
        return
    out["etl_jobs_completed"] = int(completed)
    for field, outcome in (("etl_rows_extracted", "extracted"), ("etl_rows_loaded", "loaded")):
        rows = counter_increase(ev, "etl_rows_total", label_filter=f"outcome={outcome}")
        out[field] = int(rows or 0)
    out["etl_duplicate_rows"] = int(counter_increase(ev, "etl_duplicate_rows_total") or 0)


def _diagnosis_numbers(ev: Evidence, out: dict[str, Any]) -> None:
    """Where request time goes: the signals that tell DB, upstream and code apart.

    Per request served by the app (its own counters, /metrics excluded); None
    when the app never touched that dependency.
    """
    served = _delta(ev, "http_request_duration_seconds_count", exclude_route="/metrics")
    busy = _delta(ev, "http_request_duration_seconds_sum", exclude_route="/metrics")
    db_time = _delta(ev, "db_query_duration_seconds_sum")
    out["db_time_share"] = _div(db_time, busy) if db_time else None
    queries = _delta(ev, "db_queries_per_request_sum")
    counted = _delta(ev, "db_queries_per_request_count")
    out["db_queries_per_request"] = _div(queries, counted)
    calls = _delta(ev, "upstream_request_duration_seconds_count")
    out["upstream_calls_per_request"] = _div(calls, served) if calls else None
    done = counter_increase(ev, "work_items_total", label_filter="outcome=ok")
    out["work_items_per_second"] = _div(done, out.get("duration_s")) if done else None
    rejected = counter_increase(ev, "work_items_total", label_filter="outcome=rejected")
    out["work_items_rejected"] = None if rejected is None else int(rejected)
    pool = counter_total(ev, "db_pool_checked_out")
    # Where the pool stands once the load is over: leaked sessions keep it up.
    out["db_pool_checked_out_end"] = None if pool is None else _num(float(pool["value"].iloc[-1]))
    statuses = _responses_by_status(ev)
    out["responses_by_status"] = statuses
    # 500 is what an exception nobody handled becomes; 502/503/504 are answers
    # the app chose. The share of the former is a code defect's signature.
    out["unhandled_error_rate"] = (
        _div(float(statuses.get("500", 0)), float(sum(statuses.values()))) if statuses else None
    )


def _responses_by_status(ev: Evidence) -> dict[str, int] | None:
    """What the app answered, by status code, in the load window (/metrics excluded).

    A fallback (202 pending) is not an error to Locust, but it is not a
    success either: the diagnosis needs the split.
    """
    metrics = ev.metrics
    if metrics is None:
        return None
    rows = metrics.loc[metrics["name"] == "http_requests_total", "labels"]
    codes = sorted(set(rows.str.extract(r"status=(\d+)")[0].dropna()))
    counts = {}
    for code in codes:
        grew = counter_increase(
            ev, "http_requests_total", exclude_route="/metrics", label_filter=f"status={code}"
        )
        if grew:
            counts[code] = int(grew)
    return counts or None


def summarize_evidence(ev: Evidence) -> dict[str, Any]:
    """The summary dict of loaded evidence (see SUMMARY_FIELDS)."""
    meta = ev.meta
    out: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS)
    notes = list(ev.notes)
    out["run_id"] = meta.get("run_id") or ev.run_dir.name
    out["scenario"] = meta.get("scenario")
    out["variant"] = meta.get("variant")
    out["status"] = meta.get("status")
    out["duration_s"] = _num(ev.duration_s)
    _locust_numbers(ev, out, notes)
    if ev.metrics is None:
        notes.append("no metrics.csv samples: RSS, CPU, event-loop lag and server latency unknown")
    else:
        _rss_numbers(ev, out, notes)
        _app_numbers(ev, out, notes)
    spec = meta.get("symptom")
    out["symptom"] = evaluate_symptom(spec, out)
    if out["symptom"] is None:
        notes.append("meta.json has no valid symptom spec: the symptom was not evaluated")
    elif out["symptom"]["value"] is None:
        notes.append(f"symptom metric {out['symptom']['name']!r} could not be computed")
    out["notes"] = list(dict.fromkeys(notes))
    return out


def summarize(run_dir: Path) -> dict[str, Any]:
    """Compute the summary of a run dir. Never raises because a file is missing."""
    return summarize_evidence(load_evidence(Path(run_dir)))


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    path = Path(run_dir) / "summary.json"
    path.write_bytes(orjson.dumps(dict(summary), option=orjson.OPT_INDENT_2) + b"\n")
    return path


def load_or_build_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run dir; computed (and written, if possible) when missing."""
    path = Path(run_dir) / "summary.json"
    if path.is_file():
        try:
            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict):
                return data
        except orjson.JSONDecodeError:
            pass
    summary = summarize(Path(run_dir))
    with contextlib.suppress(OSError):  # a read-only run dir: the summary is still returned
        write_summary(Path(run_dir), summary)
    return summary
