"""The steps that compute summary.json from the evidence, each filling a few fields.

reports/metrics.py names, for every field, the step that fills it; the summary
runs each step once, in the order its first field is declared, so a step may
read what an earlier one wrote (`rps` needs `requests`, the symptom needs all).
A step never raises for missing evidence: it leaves its fields None and says
why in `notes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from faults.symptom import evaluate_symptom, finite

from .evidence import Evidence, counter_increase, counter_total, exact_quantiles, machine_cpus
from .latency import late_sends, load_model, offered_rps, request_latencies
from .samples import loop_lag_p99, server_p95_bucket
from .series import (
    LAG_METRIC,
    MB,
    REQUESTS_METRIC,
    SERVER_DURATION_METRIC,
    rss_fit,
)
from .stats import whole

__all__ = [
    "Step",
    "app_numbers",
    "audit_numbers",
    "diagnosis_numbers",
    "etl_numbers",
    "final_notes",
    "load_fields",
    "locust_totals",
    "meta_fields",
    "percentiles",
    "periodic_numbers",
    "rss_numbers",
    "symptom",
]

Step = Callable[[Evidence, dict[str, Any], list[str]], None]

# Key of the summary (overall and per route) -> share of requests at or below it.
_QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
# The same percentiles in locust_stats.csv.
_LOCUST_COLUMNS = {"p50_ms": "50%", "p95_ms": "95%", "p99_ms": "99%"}


def _div(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return finite(num / den)


def _cell(row: Any, column: str) -> float | None:
    """A CSV cell as a finite float ("N/A" and blanks are None)."""
    try:
        return finite(float(row.get(column)))
    except (TypeError, ValueError):
        return None


def meta_fields(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    meta = ev.meta
    out["run_id"] = meta.get("run_id") or ev.run_dir.name
    out["scenario"] = meta.get("scenario")
    out["variant"] = meta.get("variant")
    out["status"] = meta.get("status")
    out["duration_s"] = finite(ev.duration_s)


def locust_totals(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """Requests, failures and the max from Locust's Aggregated row; counts per route."""
    agg = ev.aggregated
    if agg is None:
        # requests.csv still gives the percentiles (see `percentiles`).
        if ev.requests is None:
            notes.append("no Locust totals: requests, latency percentiles and rps are unknown")
        else:
            notes.append("no Locust totals: requests and rps are unknown")
        return
    requests, failures = finite(agg.get("Request Count")), finite(agg.get("Failure Count"))
    out["requests"] = None if requests is None else int(requests)
    out["failures"] = None if failures is None else int(failures)
    out["max_ms"] = finite(agg.get("Max Response Time"))
    out["error_rate"] = _div(out["failures"], out["requests"])
    out["rps"] = _div(out["requests"], out["duration_s"])
    routes = {}
    for name, row in _route_rows(ev).items():
        route_requests = int(_cell(row, "Request Count") or 0)
        route_failures = int(_cell(row, "Failure Count") or 0)
        routes[name] = {
            "requests": route_requests,
            "failures": route_failures,
            "error_rate": _div(route_failures, route_requests),
        }
    # Locust's numbers per request name: the cheap endpoint that suffers next to a slow one.
    out["routes"] = routes or None


def _route_rows(ev: Evidence) -> dict[str, pd.Series]:
    """locust_stats.csv's row of each request name ("GET /products"), Aggregated left out."""
    stats = ev.stats
    if stats is None or "Name" not in stats.columns:
        return {}
    return {
        f"{row.get('Type')} {row.get('Name')}": row
        for _, row in stats.iterrows()
        if row.get("Name") != "Aggregated"
    }


def _sending(ev: Evidence) -> tuple[float, float] | None:
    """(seconds, requests a second) from the first send to the last, from requests.csv.

    Not the load window's: that runs from before Locust started to after it stopped
    (1.5-2.5 s of start-up and shut-down), so a 15 s schedule kept to the request
    read as 91% of its rate against it."""
    frame = ev.requests
    if frame is None or len(frame) < 2:
        return None
    span = float(frame["start"].max() - frame["start"].min())
    return (span, (len(frame) - 1) / span) if span > 0 else None


def load_fields(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """The load model (meta.json `load.rate`, reports/latency.py) and, for an open
    run, whether it sent what it offered."""
    out["load_model"] = load_model(ev.meta)
    rate = out["offered_rps"] = offered_rps(ev.meta)
    if rate is None:
        return
    duration, achieved = _sending(ev) or (out.get("duration_s"), out.get("rps"))
    # The window's ends are known to about a second (the first and last sends, the
    # requests still in flight at the end): a shortfall within one second's worth of
    # requests is not one.
    if duration and achieved is not None and achieved * duration < rate * (duration - 1.0):
        notes.append(
            f"open model: {achieved:.4g} req/s achieved of the {rate:g} offered "
            f"({achieved / rate:.0%}): the generator could not send at the offered rate, "
            "so the app saw a lighter load than the one asked for, and the about "
            f"{(rate - achieved) * duration:,.0f} requests the schedule meant to send but "
            "never sent are in no percentile"
        )
    late = late_sends(ev)
    if late is not None and late[0]:
        count, known, longest = late
        notes.append(
            f"open model: {count:,} of {known:,} requests ({count / known:.1%}) were sent "
            f"more than one schedule interval ({1000 / rate:.3g} ms) after their intended "
            f"time, the longest {longest:.3g} s late: the generator fell behind its "
            "schedule then, and their latency counts that wait"
        )


def percentiles(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """p50/p95/p99, overall and per route, from one source, recorded in
    `percentiles_from`; and `p99_uncorrected_ms`.

    requests.csv (one row per request) when the run has it: exact, with Locust's
    definition (the smallest time at or above which that share of requests
    falls). Else locust_stats.csv, whose buckets round to 1 ms below 100 ms and
    10 ms below 1 s: noise when one fast route divides another.

    In an open run p50/p95/p99 run from each request's intended send time
    (reports/latency.py); Locust's CSVs know only the time from the actual send,
    so without requests.csv's intended times they stay None. `p99_uncorrected_ms`
    is the p99 from the actual send in every run: in a closed one, where nothing
    is corrected, the same number as `p99_ms`.
    """
    frame, sent = request_latencies(ev), request_latencies(ev, corrected=False)
    agg = ev.aggregated
    is_open = load_model(ev.meta) == "open"
    exact: dict[str, pd.Series] = {}
    if sent is not None:
        out["percentiles_from"] = "requests.csv"
        out["p99_uncorrected_ms"] = _quantiles(sent["ms"])[-1]
        if frame is not None:
            out.update(zip(_QUANTILES, _quantiles(frame["ms"]), strict=True))
            exact = {str(name): group for name, group in frame.groupby("name")["ms"]}
    elif agg is not None:
        out["percentiles_from"] = "locust_stats.csv"
        out["p99_uncorrected_ms"] = finite(agg.get(_LOCUST_COLUMNS["p99_ms"]))
        if not is_open:
            for key, column in _LOCUST_COLUMNS.items():
                out[key] = finite(agg.get(column))
            if out["p50_ms"] is None and out["requests"]:
                out["p50_ms"] = finite(agg.get("Median Response Time"))
    if is_open and frame is None and out["percentiles_from"] is not None:
        notes.append(
            "open model without intended send times in requests.csv: p50/p95/p99 from "
            "the intended send time are unknown (p99_uncorrected_ms is from the actual send)"
        )
    rows = _route_rows(ev)
    for name, numbers in (out.get("routes") or {}).items():
        if name in exact:
            numbers.update(zip(_QUANTILES, _quantiles(exact[name]), strict=True))
        elif is_open:  # Locust's numbers are from the actual send: not these
            numbers.update(dict.fromkeys(_QUANTILES))
        else:  # a route requests.csv missed (a torn file) keeps Locust's rounded numbers
            numbers.update({key: _cell(rows[name], col) for key, col in _LOCUST_COLUMNS.items()})


def _quantiles(ms: pd.Series) -> list[float | None]:
    return [finite(v) for v in exact_quantiles(ms, list(_QUANTILES.values()))]


def rss_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    if ev.metrics is None:  # the first step that reads metrics.csv says it for all of them
        notes.append("no metrics.csv samples: RSS, CPU, event-loop lag and server latency unknown")
        return
    rss = counter_total(ev, "lab_app_rss_bytes")
    if rss is None:
        notes.append("no lab_app_rss_bytes samples in the load window: RSS unknown")
        return
    mb = rss["value"] / MB
    out["rss_start_mb"] = finite(float(mb.iloc[0]))
    out["rss_end_mb"] = finite(float(mb.iloc[-1]))
    out["rss_peak_mb"] = finite(float(mb.max()))
    # How far above its starting point the app went: a spike, where the slope is a trend.
    out["rss_growth_mb"] = finite(float(mb.max() - mb.iloc[0]))
    # The kernel's high-water mark of the largest app process: catches spikes
    # shorter than the sampling interval (a buffered upload, a big response).
    hwm = counter_total(ev, "lab_app_rss_hwm_bytes")
    if hwm is not None and float(hwm["value"].max()) > 0:
        peak = hwm["value"] / MB
        out["peak_rss_mb"] = finite(float(peak.max()))
        out["peak_rss_growth_mb"] = finite(float(peak.max() - peak.iloc[0]))
    fit = rss_fit(ev)
    if fit is None or fit.source is None:
        notes.append("no request counts (http_requests_total or Locust history): RSS slope unknown")
    elif fit.slope_per_10k is None:
        notes.append(
            f"{len(fit.fitted)} RSS samples after the warm-up (need 4): RSS slope not computed"
        )
    else:
        out["rss_slope_mb_per_10k_requests"] = finite(fit.slope_per_10k)
        if fit.source != REQUESTS_METRIC:
            notes.append(f"RSS slope uses request counts from {fit.source}")


def _delta(ev: Evidence, name: str, exclude_route: str | None = None) -> float | None:
    """How much a cumulative metric (a counter, a histogram's _sum/_count) grew under load."""
    return finite(counter_increase(ev, name, exclude_route))


def app_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """Event-loop lag, server-side latency and CPU, from the app's and the runner's samples."""
    if ev.metrics is None:
        return
    lag = loop_lag_p99(ev)
    out["event_loop_lag_p99_ms"] = None if lag is None else finite(whole(lag))
    if lag is None:
        notes.append(f"{LAG_METRIC}: fewer than 2 samples or no observations in the load window")
    _server_p95(ev, out, notes)
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
    # The share of the CPU the box left the app (its cores minus the load
    # generator's CPU) that the app kept busy: "does it use the cores it has".
    cores = machine_cpus(ev.meta)
    duration, locust = out.get("duration_s"), out["locust_cpu_seconds"]
    free = (
        cores * duration - locust
        if cores is not None and duration is not None and locust is not None
        else None
    )
    # A load generator that took more than the box had (mis-sampled) leaves no share.
    out["app_cpu_share_of_free"] = _div(cpu, free) if free is None or free > 0 else None


def _server_p95(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """The bucket of the app's duration histogram that holds the p95, as its two ends.

    Not Prometheus' interpolation inside the bucket: that assumes the requests
    spread evenly over it and can land above the client's own p95 (a 260 ms p95
    in the (250, 500] ms bucket reads 375 ms), though the server's time is part
    of the client's. The histogram only knows the bucket, so the summary says
    that: `server_p95_ms` is its upper end (the p95 is at most that),
    `server_p95_low_ms` its lower end (the p95 is above that). app.log cannot
    do better: it logs a duration only for slow (>= 1 s) or failed requests.
    """
    upper, lower = server_p95_bucket("upper")(ev), server_p95_bucket("lower")(ev)
    if upper is None or lower is None:
        notes.append(
            f"{SERVER_DURATION_METRIC}: fewer than 2 samples or no observations in the load window"
        )
        return
    out["server_p95_ms"] = finite(whole(upper))
    out["server_p95_low_ms"] = finite(whole(lower))
    if out["server_p95_ms"] is None and out["server_p95_low_ms"] is not None:
        notes.append(
            f"{SERVER_DURATION_METRIC}: the p95 is in the +Inf bucket, above "
            f"{out['server_p95_low_ms']:g} ms: it has no upper bound"
        )


def diagnosis_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """Where request time goes: the signals that tell DB, upstream and code apart.

    Per request served by the app (its own counters, /metrics excluded); None
    when the app never touched that dependency.
    """
    if ev.metrics is None:
        return
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
    out["db_pool_checked_out_end"] = None if pool is None else finite(float(pool["value"].iloc[-1]))
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


def etl_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """ETL jobs in the load window: jobs finished, rows read and rows committed (by
    finished and unfinished jobs), rows the finished jobs' targets hold twice.
    None when no job finished."""
    # Jobs from the counter raised after their duplicates (target_app/etl.py), so each
    # job counted here has its duplicates counted too.
    completed = counter_increase(ev, "etl_jobs_total")
    if not completed:
        return
    out["etl_jobs_completed"] = int(completed)
    for field, outcome in (("etl_rows_extracted", "extracted"), ("etl_rows_loaded", "loaded")):
        rows = counter_increase(ev, "etl_rows_total", label_filter=f"outcome={outcome}")
        out[field] = int(rows or 0)
    out["etl_duplicate_rows"] = int(counter_increase(ev, "etl_duplicate_rows_total") or 0)


# The counts an audit writes (faults/microservice_cascade.py `audit`), as integers.
AUDIT_COUNTS = (
    "orders_confirmed", "orders_cancelled", "reservations", "orphan_reservations",
    "unreserved_orders", "unsettled_orders", "inconsistent_orders",
    # A release's deploy, from nginx's access log (lab/rollout.py counts()).
    "failed_requests", "failed_before_deploy", "failed_during_switch",
    "failed_on_new_release", "failed_during_rollback", "requests_to_new_release",
    "rolled_back", "new_release_live", "schema_revision",
)  # fmt: skip


def audit_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """The counts the run's audit took from the services' own databases after the run
    (audit.json). None without it; a run whose audit failed says so in meta.json."""
    from .formats import AuditFile

    counts = AuditFile(ev.run_dir).read()
    if counts is None:
        if (ev.run_dir / AuditFile.NAME).exists():
            notes.append(f"{AuditFile.NAME} could not be read")
        return
    for name in AUDIT_COUNTS:
        if name in counts:
            out[name] = int(counts[name])


def periodic_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """Periodic jobs in the load window: the schedule's ticks that ran, the runs, and
    the runs per tick (1 when each tick runs once). None when no tick ran.

    Both gauges are counted by the app from the job's own table (one row per run),
    which only grows during a run: their growth in the window is what ran in it."""
    ticks = counter_increase(ev, "periodic_job_ticks")
    if not ticks:
        return
    runs = counter_increase(ev, "periodic_job_runs") or 0.0
    out["periodic_ticks"] = int(ticks)
    out["periodic_runs_per_tick"] = _div(runs, ticks)
    out["periodic_duplicate_runs"] = max(int(runs - ticks), 0)


def webhook_numbers(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """Payment webhooks, from both ends: the sender's record (webhooks.csv: every
    delivery, its event and what came back) and what the shop's database holds at
    the run's last sample, after its jobs drained (webhook_payments{count}, counted
    from the payments table). None without webhooks.csv.

    An event is lost when the sender delivered it and the shop holds no payment
    for it; applied twice when it holds more than one. The sender mints every event
    id and nothing else pays by webhook (a run's `prepare` empties them), so the
    counts compare: the paid events are among the sent ones."""
    path = ev.run_dir / "webhooks.csv"
    if not path.is_file():
        return
    try:
        sent = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        notes.append("webhooks.csv could not be read")
        return
    if sent.empty:
        return
    events = sent["event_id"].nunique()
    acked = sent.loc[sent["status"].between(200, 299), "event_id"].nunique()
    out["webhook_events_sent"] = int(events)
    out["webhook_events_acked"] = int(acked)
    out["webhook_redeliveries"] = int(len(sent) - events)
    payments = _last_labelled(ev, "webhook_payments", "count=payments")
    paid = _last_labelled(ev, "webhook_payments", "count=events")
    if payments is None or paid is None:
        notes.append("webhook_payments was not sampled: what the shop applied is unknown")
        return
    out["webhook_events_lost"] = max(int(events - paid), 0)
    out["webhook_duplicate_payments"] = max(int(payments - paid), 0)


def _last_labelled(ev: Evidence, name: str, label: str) -> float | None:
    """A gauge's last sample of the run (after its drain too), for one label set."""
    series = counter_total(ev, name, window=False, label_filter=label)
    return None if series is None else float(series["value"].iloc[-1])


def symptom(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    """The scenario's predicate (meta.json's spec) over the numbers above."""
    out["symptom"] = evaluate_symptom(ev.meta.get("symptom"), out)
    if out["symptom"] is None:
        notes.append("meta.json has no valid symptom spec: the symptom was not evaluated")
    elif out["symptom"]["value"] is None:
        notes.append(f"symptom metric {out['symptom']['name']!r} could not be computed")


def final_notes(ev: Evidence, out: dict[str, Any], notes: list[str]) -> None:
    out["notes"] = list(dict.fromkeys(notes))
