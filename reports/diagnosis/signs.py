"""A blinded run dir's evidence as `Signs` (faults/_signs.py), what signatures read.

The numbers are the summary's (reports/metrics.py) computed from the blinded dir,
so a field that needs the lab's ground truth (audit.json, webhooks.csv) is None,
plus the client's totals from requests.csv (the blinded dir has no Locust CSVs)
and a few the engine derives from the app's own series.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from faults._signs import Frame, RouteSigns, Signs

from ..evidence import Evidence, bucket_snapshots, counter_increase, counter_total, load_evidence
from ..stats import histogram_quantile
from ..summary import summarize_evidence

__all__ = ["ENGINE_NUMBERS", "build_signs", "log_key"]

# The numbers the engine adds to the summary's, with what each is.
ENGINE_NUMBERS = {
    "requests": "requests the clients sent (requests.csv)",
    "failures": "requests the clients saw fail (requests.csv)",
    "error_rate": "share of requests that failed (requests.csv)",
    "rps": "requests per second the clients completed (requests.csv)",
    "served": "requests the app served in the load window (http_requests_total, not /metrics)",
    "cpu_ms_per_served": "app CPU per request served (lab_app_cpu_seconds_total per request)",
    "db_query_p50_ms": "median database query time (db_query_duration_seconds)",
    "db_query_p99_ms": "p99 database query time (db_query_duration_seconds)",
    "db_queries": "database queries in the load window (db_query_duration_seconds_count)",
    "upstream_p50_ms": "median upstream call time (upstream_request_duration_seconds)",
    "in_flight_max": "most requests in flight at once (http_requests_in_flight)",
    "server_mean_ms": "mean server time of a request (http_request_duration_seconds)",
    "client_p50_over_server_mean": "client p50 / server mean time (time spent outside the app)",
    "bytes_per_request": "mean response size (requests.csv bytes)",
    "client_mbps": "response bytes per second the clients received (requests.csv)",
    "rss_end_over_start": "app RSS at the end / at the start",
    "rss_second_half_mb": "rise of app RSS over the load's second half (lab_app_rss_bytes)",
    "open_fds_growth": "rise of the app's open file descriptors in the load (process_open_fds)",
    "status_5xx_share": "share of the app's responses with a 5xx status (http_requests_total)",
    "status_503_share": "share of the app's responses with status 503",
    "status_4xx_share": "share of the app's responses with a 4xx status",
    "slow_requests": "requests the app logged as slow (>= 1 s) or failed",
    "slow_db_share": "median share of a slow request's time in the database (app.log db_ms)",
    "slow_upstream_share": "median share of a slow request's time upstream (app.log upstream_ms)",
    "upstream_failed_share": "share of upstream calls that failed (upstream_request_duration_*)",
    "periodic_runs_per_tick": "periodic job runs per schedule tick (periodic_job_runs / _ticks)",
    "proxy_upstreams": "upstreams the load balancer sent requests to (proxy-access.log)",
    "proxy_late_upstream_failed_share": "share of 5xx of the upstream that appeared last",
    "proxy_late_upstream_requests": "requests the upstream that appeared last answered",
}

_NUMBERS_IN_TEXT = re.compile(r"0x[0-9a-f]+|\d+(?:\.\d+)?")
_HOSTPORT = re.compile(r"https?://[^\s/\"]+")


def log_key(record: dict[str, Any]) -> str:
    """`LEVEL logger: message`, its numbers, hex ids and URL hosts collapsed, so the
    records of one log call count together."""
    msg = str(record.get("msg", ""))[:120]
    msg = _HOSTPORT.sub("http://HOST", msg)
    msg = _NUMBERS_IN_TEXT.sub("N", msg)
    return f"{record.get('level', '?')} {record.get('logger', '?')}: {msg}"


def _exception_class(exc: str) -> str | None:
    """The class of a formatted traceback's exception: its last line's `Name:`."""
    for line in reversed(exc.strip().splitlines()):
        head = line.split(":", 1)[0].strip()
        if head and " " not in head:
            return head.rsplit(".", 1)[-1]
    return None


def _read_logs(path: Path) -> tuple[Counter[str], Counter[str], list[tuple[float, float, float]]]:
    """Records by log_key, exception classes, and each slow-or-failed request's
    (duration_ms, db_ms, upstream_ms)."""
    keys: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    slow: list[tuple[float, float, float]] = []
    if not path.is_file():
        return keys, exceptions, slow
    with path.open("rb") as src:
        for line in src:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            if record.get("logger") == "target_app.request" and record.get("msg") == "request":
                continue  # one per request served: the routes say this better
            keys[log_key(record)] += 1
            duration = record.get("duration_ms")
            if isinstance(duration, int | float) and duration > 0 and "db_ms" in record:
                db, up = record.get("db_ms") or 0.0, record.get("upstream_ms") or 0.0
                if isinstance(db, int | float) and isinstance(up, int | float):
                    slow.append((float(duration), float(db), float(up)))
            exc = record.get("exc")
            if isinstance(exc, str):
                name = _exception_class(exc)
                if name:
                    exceptions[name] += 1
    return keys, exceptions, slow


def _proxy(path: Path) -> dict[str, float]:
    """The load balancer's log (format: reports.formats.ProxyLog): how many upstreams
    answered, and how the one that appeared last (a new release) did."""
    from ..formats import ProxyLog

    if not path.is_file():
        return {}
    order: list[str] = []
    total: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for line in ProxyLog(path).read():
        upstream = line.upstream or "-"
        if upstream not in total:
            order.append(upstream)
        total[upstream] += 1
        if line.status >= 500:
            failed[upstream] += 1
    if not order:
        return {}
    last = order[-1]
    return {
        "proxy_upstreams": float(len(order)),
        "proxy_late_upstream_requests": float(total[last]) if len(order) > 1 else 0.0,
        "proxy_late_upstream_failed_share": failed[last] / total[last] if len(order) > 1 else 0.0,
    }


def _half_rise(ev: Evidence, name: str, scale: float) -> tuple[float | None, float | None]:
    """(rise over the second half of the load window, rise max - first) of a gauge."""
    series = counter_total(ev, name)
    if series is None or len(series) < 4:
        return None, None
    values = series["value"].to_numpy(dtype=float) / scale
    middle = len(values) // 2
    return float(values[-1] - values[middle]), float(values.max() - values[0])


def _routes(requests: pd.DataFrame | None) -> dict[str, RouteSigns]:
    if requests is None or requests.empty:
        return {}
    out: dict[str, RouteSigns] = {}
    ok = requests["ok"] if "ok" in requests.columns else pd.Series(1, index=requests.index)
    for name, rows in requests.groupby("name"):
        ms = rows["ms"].to_numpy(dtype=float)
        failed = int((ok.loc[rows.index] == 0).sum())
        out[str(name)] = RouteSigns(
            requests=len(rows),
            failures=failed,
            p50_ms=float(np.quantile(ms, 0.5)) if ms.size else None,
            p95_ms=float(np.quantile(ms, 0.95)) if ms.size else None,
        )
    return out


def _quantile_ms(ev: Evidence, name: str, q: float) -> float | None:
    snap = bucket_snapshots(ev, name)
    if snap is None or len(snap) < 2:
        return None
    delta = snap.iloc[-1] - snap.iloc[0]
    value = histogram_quantile(q, [(float(str(le)), float(c)) for le, c in delta.items()])
    return None if value is None or not math.isfinite(value) else value * 1000.0


def _div(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def _counters(ev: Evidence) -> dict[str, float]:
    """Every counter-like series' increase over the load window, by name and by labels."""
    out: dict[str, float] = {}
    if ev.metrics is None:
        return out
    for name in map(str, ev.metrics["name"].unique()):
        if not name.endswith(("_total", "_count", "_sum")):
            continue
        total = counter_increase(ev, name)
        if total is None:
            continue
        out[name] = total
        rows = ev.metrics.loc[ev.metrics["name"] == name, "labels"].dropna().unique()
        for labels in map(str, rows):
            if not labels or "route=" in labels:
                continue
            value = counter_increase(ev, name, label_filter=labels)
            if value is not None:
                out[f"{name}{{{labels}}}"] = value
    return out


def _gauges(ev: Evidence) -> tuple[dict[str, float], dict[str, float]]:
    peak: dict[str, float] = {}
    end: dict[str, float] = {}
    if ev.metrics is None:
        return peak, end
    for name in map(str, ev.metrics["name"].unique()):
        if name.endswith(("_total", "_count", "_sum", "_bucket", "_created")):
            continue
        inside = counter_total(ev, name)
        after = counter_total(ev, name, window=False)
        if inside is not None and not inside.empty:
            peak[name] = float(inside["value"].max())
        if after is not None and not after.empty:
            end[name] = float(after["value"].iloc[-1])
    return peak, end


def _frames(profile: dict[str, Any] | None) -> tuple[str | None, tuple[Frame, ...]]:
    if not profile:
        return None, ()
    rows = []
    for row in profile.get("top") or []:
        if not isinstance(row, dict):
            continue
        value = row.get("value")
        unit = row.get("unit")
        share = float(value) if isinstance(value, int | float) and unit == "share" else 0.0
        if unit != "share":
            total = sum(
                float(r.get("value") or 0) for r in profile.get("top") or [] if isinstance(r, dict)
            )
            share = float(value) / total if isinstance(value, int | float) and total else 0.0
        rows.append(Frame(str(row.get("function", "")), str(row.get("location", "")), share))
    tool = profile.get("tool")
    return (str(tool) if tool else None), tuple(rows)


def build_signs(blinded: Path) -> Signs:
    """The Signs of a blinded run dir (reports/diagnosis/blind.py)."""
    ev = load_evidence(blinded)
    summary = summarize_evidence(ev)
    numbers: dict[str, Any] = {
        k: v for k, v in summary.items() if isinstance(v, int | float) or v is None
    }
    req = ev.requests
    duration = ev.duration_s
    if req is not None and not req.empty:
        ok = req["ok"] if "ok" in req.columns else pd.Series(1, index=req.index)
        numbers["requests"] = float(len(req))
        numbers["failures"] = float((ok == 0).sum())
        numbers["error_rate"] = numbers["failures"] / len(req)
        numbers["rps"] = _div(float(len(req)), duration)
        if "bytes" in req.columns:
            sent = float(req["bytes"].fillna(0).sum())
            numbers["bytes_per_request"] = sent / len(req)
            numbers["client_mbps"] = _div(sent / 1e6, duration)
    peak, last = _gauges(ev)
    served = counter_increase(ev, "http_requests_total", exclude_route="/metrics")
    numbers["served"] = served
    cpu = numbers.get("app_cpu_seconds")
    numbers["cpu_ms_per_served"] = _div(None if cpu is None else cpu * 1000.0, served)
    numbers["db_query_p50_ms"] = _quantile_ms(ev, "db_query_duration_seconds_bucket", 0.5)
    numbers["db_query_p99_ms"] = _quantile_ms(ev, "db_query_duration_seconds_bucket", 0.99)
    numbers["db_queries"] = counter_increase(ev, "db_query_duration_seconds_count")
    numbers["upstream_p50_ms"] = _quantile_ms(ev, "upstream_request_duration_seconds_bucket", 0.5)
    busy = counter_increase(ev, "http_request_duration_seconds_sum", exclude_route="/metrics")
    count = counter_increase(ev, "http_request_duration_seconds_count", exclude_route="/metrics")
    mean = _div(None if busy is None else busy * 1000.0, count)
    numbers["server_mean_ms"] = mean
    numbers["client_p50_over_server_mean"] = _div(numbers.get("p50_ms"), mean)
    start, end = numbers.get("rss_start_mb"), numbers.get("rss_end_mb")
    numbers["rss_end_over_start"] = _div(end, start)
    numbers["in_flight_max"] = peak.get("http_requests_in_flight")
    logs, exceptions, slow = _read_logs(blinded / "app.log")
    numbers["slow_requests"] = float(len(slow))
    if slow:
        rows = np.asarray(slow)
        numbers["slow_db_share"] = float(np.median(rows[:, 1] / rows[:, 0]))
        numbers["slow_upstream_share"] = float(np.median(rows[:, 2] / rows[:, 0]))
    numbers["rss_second_half_mb"] = _half_rise(ev, "lab_app_rss_bytes", 1e6)[0]
    numbers["open_fds_growth"] = _half_rise(ev, "process_open_fds", 1.0)[1]
    statuses = summary.get("responses_by_status")
    if isinstance(statuses, dict) and statuses:
        answered = float(sum(statuses.values()))
        by_class: dict[str, float] = {}
        for code, count in statuses.items():
            by_class[str(code)[0]] = by_class.get(str(code)[0], 0.0) + float(count)
        numbers["status_5xx_share"] = by_class.get("5", 0.0) / answered
        numbers["status_4xx_share"] = by_class.get("4", 0.0) / answered
        numbers["status_503_share"] = float(statuses.get("503", 0)) / answered
    upstream_calls = counter_increase(ev, "upstream_request_duration_seconds_count")
    upstream_ok = counter_increase(
        ev, "upstream_request_duration_seconds_count", label_filter="outcome=ok"
    )
    if upstream_calls:
        numbers["upstream_failed_share"] = 1.0 - (upstream_ok or 0.0) / upstream_calls
    runs, ticks = last.get("periodic_job_runs"), last.get("periodic_job_ticks")
    numbers["periodic_runs_per_tick"] = _div(runs, ticks)
    numbers.update(_proxy(blinded / "proxy-access.log"))
    tool, frames = _frames(ev.profile)
    processes = peak.get("lab_app_processes")
    app = ev.meta.get("app")
    app = app if isinstance(app, dict) else {}
    # gunicorn: its master and the workers; uvicorn alone: one process.
    workers = int(processes) - 1 if processes and processes > 1 else int(app.get("workers") or 1)
    machine = ev.meta.get("machine")
    machine = machine if isinstance(machine, dict) else {}
    cpus = machine.get("cpus") if isinstance(machine.get("cpus"), int) else None
    clean = {
        k: (float(v) if v is not None and math.isfinite(float(v)) else None)
        for k, v in numbers.items()
    }
    return Signs(
        numbers=clean,
        routes=_routes(req),
        counters=_counters(ev),
        gauge_max=peak,
        gauge_end=last,
        logs=dict(logs),
        exceptions=dict(exceptions),
        profile_tool=tool,
        frames=frames,
        workers=max(1, workers),
        cpus=cpus,
    )
