"""The fields of summary.json, each declared once: the registry the reports read.

summary.json's keys and their order, the steps that compute them, the report's
key numbers, the comparison's rows with the samples behind their confidence
intervals, the comparison's bar charts and the "source" column that says where
each number comes from (the client or the server side, which file, exact or
bucketed) all come from FIELDS. Adding a
metric is one entry here (plus, if no step computes it yet, a step in
reports/steps.py); a scenario's Symptom names one of these metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Flag, auto
from typing import Any, Literal

from . import samples as s
from .steps import (
    Step,
    app_numbers,
    audit_numbers,
    diagnosis_numbers,
    etl_numbers,
    final_notes,
    load_fields,
    locust_totals,
    meta_fields,
    percentiles,
    periodic_numbers,
    rss_numbers,
    symptom,
    webhook_numbers,
)

__all__ = [
    "BAR_METRICS",
    "COMPARED_METRICS",
    "FIELDS",
    "KEY_METRICS",
    "METRICS",
    "ROUTE_METRICS",
    "STEPS",
    "SUMMARY_FIELDS",
    "Better",
    "Field",
    "Group",
    "Metric",
    "Source",
]

Better = Literal["higher", "lower"]


class Group(Flag):
    """Where a metric appears besides summary.json."""

    NONE = 0
    KEY = auto()  # a row of the report's key numbers
    KEY_WHEN_MEASURED = auto()  # the same, left out when None (a few scenarios' own numbers)
    COMPARED = auto()  # a row of the before/after comparison
    BAR = auto()  # a bar chart of the comparison
    PER_ROUTE = auto()  # also a number of each request name, in summary["routes"]


@dataclass(frozen=True)
class Field:
    """A key of summary.json, and the step of reports/steps.py that fills it."""

    name: str
    label: str
    fill: Step


# Where a number comes from, for the report's and the comparison's "source" column:
# a sentence, or one chosen from the run's summary (the percentiles' file).
Source = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Metric(Field):
    """A numeric field: a finite number, or None when the run did not measure it."""

    unit: str = ""
    better: Better | None = None  # None: a setting or a volume, neither better nor worse
    groups: Group = Group.NONE
    short: str = ""  # the title of its bar chart, where the plot has no room for the label
    samples: s.Samples | None = None  # what the bootstrap resamples
    source: Source = ""  # who measured it, from which file, and how
    # Set on a bucket's upper end (a histogram's quantile): the field holding its
    # lower end. The number is then an upper bound, and shown as one.
    lower_field: str | None = None

    @property
    def title(self) -> str:
        """The label with its unit, for a table without a unit column (the comparison's)."""
        # A share is shown as a percentage on the value itself.
        return f"{self.label} ({self.unit})" if self.unit and self.unit != "%" else self.label

    def source_in(self, summary: Mapping[str, Any]) -> str:
        """Where this metric's number in `summary` comes from."""
        return self.source(summary) if callable(self.source) else self.source


CLIENT_EXACT = "client (Locust): requests.csv, every request, exact"
CLIENT_ROUNDED = "client (Locust): locust_stats.csv, rounded to Locust's buckets"
FROM_INTENDED = "from the intended send time (open model)"
FROM_SENT = "from the actual send (open model: coordinated omission not corrected)"


def _client_file(summary: Mapping[str, Any]) -> str:
    found = summary.get("percentiles_from")
    if found == "requests.csv":
        return CLIENT_EXACT
    if found == "locust_stats.csv":
        return CLIENT_ROUNDED
    return "client (Locust): not measured"


def _client_percentile(summary: Mapping[str, Any]) -> str:
    """p50/p95/p99: in an open run, from the intended send time (reports/latency.py),
    which only requests.csv's `intended` column gives."""
    if summary.get("load_model") != "open" or summary.get("percentiles_from") is None:
        return _client_file(summary)
    if summary.get("p99_ms") is None:
        return "client (Locust): not measured: an open run needs requests.csv's intended times"
    return f"{_client_file(summary)}, {FROM_INTENDED}"


def _client_uncorrected(summary: Mapping[str, Any]) -> str:
    if summary.get("load_model") != "open" or summary.get("percentiles_from") is None:
        return _client_file(summary)
    return f"{_client_file(summary)}, {FROM_SENT}"


_LOCUST = "client (Locust): locust_stats.csv, Aggregated row"
_RSS = "runner: the app tree's RSS, sampled each second (metrics.csv lab_app_rss_bytes)"
_HWM = "kernel: VmHWM of the largest app process (metrics.csv lab_app_rss_hwm_bytes)"
_CPU = "runner: the app tree's CPU time (metrics.csv lab_app_cpu_seconds_total)"
_APP = "app: its /metrics counters (metrics.csv)"


_KEY, _IF_MEASURED, _COMPARED, _BAR, _ROUTE = (
    Group.KEY, Group.KEY_WHEN_MEASURED, Group.COMPARED, Group.BAR, Group.PER_ROUTE,
)  # fmt: skip
_LATENCY = _KEY | _COMPARED | _ROUTE

FIELDS: tuple[Field, ...] = (
    Field("run_id", "run id (the run dir's name)", meta_fields),
    Field("scenario", "scenario slug", meta_fields),
    Field("variant", "faulty or fixed", meta_fields),
    Field("status", "how the run ended (meta.json)", meta_fields),
    Metric("duration_s", "load duration", meta_fields, unit="s", groups=_KEY,
           source="meta.json: load start to load end"),
    Metric("requests", "requests", locust_totals, groups=_KEY | _ROUTE, source=_LOCUST),
    Metric("failures", "failures", locust_totals, better="lower", groups=_KEY | _ROUTE,
           source=_LOCUST),
    Metric("rps", "throughput", locust_totals, unit="req/s", better="higher",
           groups=_KEY | _COMPARED | _BAR, short="requests/s", samples=s.Samples(s.rps),
           source="client (Locust): locust_stats.csv requests / load duration"),
    # The load model decides what the client percentiles measure (reports/latency.py).
    Field("load_model", "closed (users wait for each response) or open (sent on a schedule)",
          load_fields),
    Metric("offered_rps", "offered rate (open model)", load_fields, unit="req/s",
           groups=_IF_MEASURED, source="meta.json: load.rate, the rate the schedule sends at"),
    Metric("p50_ms", "client p50 response time", percentiles, unit="ms", better="lower",
           groups=_LATENCY, samples=s.Samples(s.request_quantile(0.50)),
           source=_client_percentile),
    Metric("p95_ms", "client p95 response time", percentiles, unit="ms", better="lower",
           groups=_LATENCY | _BAR, short="client p95 (ms)",
           samples=s.Samples(s.request_quantile(0.95)), source=_client_percentile),
    Metric("p99_ms", "client p99 response time", percentiles, unit="ms", better="lower",
           groups=_LATENCY | _BAR, short="client p99 (ms)",
           samples=s.Samples(s.request_quantile(0.99)), source=_client_percentile),
    # What the closed model's measure would have said; in a closed run p99_ms itself.
    Metric("p99_uncorrected_ms", "client p99 from the actual send", percentiles, unit="ms",
           better="lower", groups=_KEY | _COMPARED,
           samples=s.Samples(s.request_quantile(0.99, corrected=False)),
           source=_client_uncorrected),
    Metric("max_ms", "client max response time", locust_totals, unit="ms", better="lower",
           groups=_KEY, source=_LOCUST),
    Field("percentiles_from", "where p50/p95/p99 come from: requests.csv or locust_stats.csv",
          percentiles),
    Metric("error_rate", "error rate", locust_totals, unit="%", better="lower",
           groups=_KEY | _COMPARED | _BAR | _ROUTE, samples=s.Samples(s.error_rate),
           source="client (Locust): locust_stats.csv failures / requests"),
    Metric("rss_slope_mb_per_10k_requests", "RSS slope after warm-up", rss_numbers,
           unit="MB / 10k requests", better="lower", groups=_KEY | _COMPARED | _BAR,
           short="RSS slope (MB/10k req)",
           samples=s.Samples(s.rss_slope, compare="difference"),
           source=f"{_RSS} against the app's request count, least squares after the warm-up"),
    Metric("rss_start_mb", "app RSS at start", rss_numbers, unit="MB", better="lower",
           groups=_KEY, source=_RSS),
    Metric("rss_end_mb", "app RSS at end", rss_numbers, unit="MB", better="lower",
           groups=_KEY | _COMPARED | _BAR, short="RSS end (MB)", source=_RSS),
    Metric("rss_peak_mb", "app RSS peak", rss_numbers, unit="MB", better="lower",
           groups=_KEY, source=_RSS),
    Metric("rss_growth_mb", "rise of app RSS above its start", rss_numbers, unit="MB",
           better="lower", source=_RSS),
    Metric("peak_rss_mb", "largest app process's peak RSS (kernel high-water mark)",
           rss_numbers, unit="MB", better="lower", groups=_KEY, source=_HWM),
    Metric("peak_rss_growth_mb", "rise of that peak under load", rss_numbers, unit="MB",
           better="lower", groups=_KEY, source=_HWM),
    Metric("event_loop_lag_p99_ms", "event-loop lag p99", app_numbers, unit="ms",
           better="lower", groups=_KEY | _COMPARED | _BAR, short="loop lag p99 (ms)",
           samples=s.Samples(s.loop_lag_p99),
           source="app: event_loop_lag_seconds histogram, bucketed; Prometheus' "
                  "interpolation inside the bucket that holds the p99"),
    # The histogram knows the bucket of the p95, not where in it: its upper end
    # is a bound that cannot understate the server's time (an interpolation can
    # overstate it past the client's own p95).
    Metric("server_p95_ms", "server-side p95 duration (bucket upper bound)", app_numbers, unit="ms",
           better="lower", groups=_KEY | _COMPARED, lower_field="server_p95_low_ms",
           samples=s.Samples(s.server_p95_bucket("upper")),
           source="server side (app): http_request_duration_seconds histogram, bucketed; "
                  "the upper end of the bucket that holds the p95"),
    Metric("server_p95_low_ms", "lower end of the server-side p95's bucket", app_numbers,
           unit="ms", better="lower",
           source="server side (app): the lower end of that bucket"),
    Metric("app_cpu_seconds", "app CPU time", app_numbers, unit="s", better="lower",
           groups=_KEY, source=_CPU),
    Metric("locust_cpu_seconds", "Locust CPU time", app_numbers, unit="s", groups=_KEY,
           source="runner: Locust's CPU time (metrics.csv lab_locust_cpu_seconds_total)"),
    Metric("app_cpu_ms_per_request", "app CPU per request", app_numbers, unit="ms",
           better="lower", groups=_KEY | _COMPARED | _BAR, short="app CPU (ms/req)",
           samples=s.Samples(s.cpu_ms_per_request),
           source=f"{_CPU} / client (Locust) requests"),
    # Busy cores are the cost of a request or the parallelism a fix gains: no direction.
    Metric("app_cpu_cores", "cores the app kept busy (mean)", app_numbers, groups=_KEY,
           source=f"{_CPU} / load duration"),
    Metric("app_cpu_share_of_free", "share of the CPU left to the app that it used",
           app_numbers, groups=_KEY, better="higher",
           source=f"{_CPU} / (cores x load duration - Locust's CPU time)"),
    # Where the time goes: no per-second series, so reported but not bootstrapped.
    Metric("db_time_share", "share of request time in the DB", diagnosis_numbers,
           better="lower", groups=_KEY | _COMPARED,
           source="app: db_query_duration_seconds_sum / http_request_duration_seconds_sum"),
    Metric("db_queries_per_request", "DB queries per request", diagnosis_numbers,
           better="lower", groups=_KEY | _COMPARED,
           source="app: db_queries_per_request histogram, sum / count"),
    Metric("upstream_calls_per_request", "upstream calls per request", diagnosis_numbers,
           better="lower", groups=_KEY | _COMPARED,
           source="app: upstream_request_duration_seconds_count / requests it served"),
    Field("responses_by_status", "the app's responses by status code (/metrics excluded)",
          diagnosis_numbers),
    Metric("unhandled_error_rate", "unhandled 500s / responses", diagnosis_numbers,
           better="lower", groups=_COMPARED,
           source="app: http_requests_total, status 500 / all (/metrics left out)"),
    Metric("db_pool_checked_out_end", "DB pool connections checked out at the end",
           diagnosis_numbers, better="lower", source="app: db_pool_checked_out, last sample"),
    Metric("work_items_per_second", "work items processed per second", diagnosis_numbers,
           unit="items/s", better="higher", source=f"{_APP}: work_items_total{{outcome=ok}}"),
    Metric("work_items_rejected", "work items rejected", diagnosis_numbers, unit="items",
           better="lower", source=f"{_APP}: work_items_total{{outcome=rejected}}"),
    Metric("etl_jobs_completed", "ETL jobs completed", etl_numbers, groups=_IF_MEASURED,
           source=f"{_APP}: etl_jobs_total"),
    Metric("etl_rows_extracted", "ETL rows read from the source", etl_numbers, unit="rows",
           groups=_IF_MEASURED, source=f"{_APP}: etl_rows_total"),
    Metric("etl_rows_loaded", "ETL rows committed to the target", etl_numbers, unit="rows",
           groups=_IF_MEASURED, source=f"{_APP}: etl_rows_total"),
    Metric("etl_duplicate_rows", "rows the ETL jobs' targets hold twice", etl_numbers,
           unit="rows", better="lower", groups=_IF_MEASURED,
           source=f"{_APP}: etl_duplicate_rows_total"),
    Metric("periodic_ticks", "schedule ticks a periodic job ran in", periodic_numbers,
           unit="ticks", groups=_IF_MEASURED, source=f"{_APP}: periodic_job_ticks"),
    Metric("periodic_runs_per_tick", "runs of a periodic job per tick", periodic_numbers,
           unit="runs", better="lower", groups=_IF_MEASURED | _COMPARED,
           source=f"{_APP}: periodic_job_runs / periodic_job_ticks"),
    Metric("periodic_duplicate_runs", "runs of a tick beyond its first", periodic_numbers,
           unit="runs", better="lower", groups=_IF_MEASURED,
           source=f"{_APP}: periodic_job_runs - periodic_job_ticks"),
    Metric("webhook_events_sent", "webhook events the sender delivered", webhook_numbers,
           unit="events", groups=_IF_MEASURED, source="webhooks.csv: distinct events"),
    Metric("webhook_events_acked", "webhook events acknowledged (a 2xx)", webhook_numbers,
           unit="events", groups=_IF_MEASURED, source="webhooks.csv: events with a 2xx"),
    Metric("webhook_redeliveries", "deliveries of an event beyond its first", webhook_numbers,
           unit="deliveries", groups=_IF_MEASURED,
           source="webhooks.csv: deliveries - events (retries and duplicates)"),
    Metric("webhook_events_lost", "delivered events the shop holds no payment for",
           webhook_numbers, unit="events", better="lower", groups=_IF_MEASURED | _COMPARED,
           source=f"webhooks.csv and {_APP}: webhook_payments{{count=events}}, last sample"),
    Metric("webhook_duplicate_payments", "payments beyond the first for one event",
           webhook_numbers, unit="payments", better="lower", groups=_IF_MEASURED | _COMPARED,
           source=f"{_APP}: webhook_payments, payments - events, last sample"),
    Metric("orders_confirmed", "orders confirmed (shop's database, after the run)",
           audit_numbers, unit="orders", groups=_IF_MEASURED,
           source="audit.json: the shop's orders table"),
    Metric("orders_cancelled", "orders cancelled for lack of stock", audit_numbers,
           unit="orders", groups=_IF_MEASURED, source="audit.json: the shop's orders table"),
    Metric("reservations", "stock reservations (inventory's database, after the run)",
           audit_numbers, unit="reservations", groups=_IF_MEASURED,
           source="audit.json: the inventory's reservations table"),
    Metric("orphan_reservations", "stock reserved for an order the shop does not hold",
           audit_numbers, unit="reservations", better="lower", groups=_IF_MEASURED,
           source="audit.json: reservations minus the shop's confirmed and pending orders"),
    Metric("unreserved_orders", "confirmed orders without reserved stock", audit_numbers,
           unit="orders", better="lower", groups=_IF_MEASURED,
           source="audit.json: the shop's confirmed orders minus reservations"),
    Metric("unsettled_orders", "orders still awaiting their stock after the run",
           audit_numbers, unit="orders", better="lower", groups=_IF_MEASURED,
           source="audit.json: the shop's awaiting_stock orders"),
    Metric("inconsistent_orders", "orders the two databases disagree on", audit_numbers,
           unit="orders", better="lower", groups=_IF_MEASURED | _COMPARED,
           source="audit.json: orphan + unreserved + unsettled"),
    Metric("failed_requests", "requests answered with status >= 500 (nginx's log)",
           audit_numbers, unit="requests", better="lower", groups=_IF_MEASURED | _COMPARED,
           source="audit.json: the proxy's access log, status >= 500"),
    Metric("failed_before_deploy", "failed requests before the deploy began", audit_numbers,
           unit="requests", better="lower", groups=_IF_MEASURED,
           source="audit.json: the proxy's access log and rollout.json's timeline"),
    Metric("failed_during_switch", "failed from the deploy's start to the switch (or refusal)",
           audit_numbers, unit="requests", better="lower", groups=_IF_MEASURED,
           source="audit.json: the proxy's access log and rollout.json's timeline"),
    Metric("failed_on_new_release", "failed while the new release was live, before a rollback",
           audit_numbers, unit="requests", better="lower", groups=_IF_MEASURED,
           source="audit.json: the proxy's access log and rollout.json's timeline"),
    Metric("failed_during_rollback", "failed from the rollback's start to the run's end",
           audit_numbers, unit="requests", better="lower", groups=_IF_MEASURED,
           source="audit.json: the proxy's access log and rollout.json's timeline"),
    Metric("requests_to_new_release", "requests the new release answered", audit_numbers,
           unit="requests", groups=_IF_MEASURED,
           source="audit.json: the proxy's access log, by upstream"),
    Metric("rolled_back", "1 when the procedure switched back to the old release",
           audit_numbers, groups=_IF_MEASURED, source="audit.json: rollout.json's timeline"),
    Metric("new_release_live", "1 when the new release was live at the run's end",
           audit_numbers, groups=_IF_MEASURED, source="audit.json: rollout.json"),
    Metric("schema_revision", "the database's Alembic revision after the run", audit_numbers,
           groups=_IF_MEASURED, source="audit.json: alembic_version"),
    Field("routes", "numbers per Locust request name: the PER_ROUTE metrics",
          locust_totals),
    Field("symptom", "the scenario's predicate, evaluated on these numbers", symptom),
    Field("notes", "what could not be measured, and why", final_notes),
)  # fmt: skip

SUMMARY_FIELDS: list[str] = [f.name for f in FIELDS]
METRICS: dict[str, Metric] = {f.name: f for f in FIELDS if isinstance(f, Metric)}
# Each step once, where its first field is: later steps read what earlier ones wrote.
STEPS: list[Step] = list(dict.fromkeys(f.fill for f in FIELDS))


def _in(group: Group) -> list[Metric]:
    return [m for m in METRICS.values() if m.groups & group]


KEY_METRICS = _in(Group.KEY | Group.KEY_WHEN_MEASURED)
COMPARED_METRICS = _in(Group.COMPARED)
BAR_METRICS = _in(Group.BAR)
ROUTE_METRICS = _in(Group.PER_ROUTE)
