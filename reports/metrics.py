"""The fields of summary.json, each declared once: the registry the reports read.

summary.json's keys and their order, the steps that compute them, the report's
key numbers, the comparison's rows with the samples behind their confidence
intervals, and the comparison's bar charts all come from FIELDS. Adding a
metric is one entry here (plus, if no step computes it yet, a step in
reports/steps.py); a scenario's Symptom names one of these metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto
from typing import Literal

from . import samples as s
from .series import cpu_per_request_samples
from .steps import (
    Step,
    app_numbers,
    diagnosis_numbers,
    etl_numbers,
    final_notes,
    locust_totals,
    meta_fields,
    percentiles,
    rss_numbers,
    symptom,
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


@dataclass(frozen=True)
class Metric(Field):
    """A numeric field: a finite number, or None when the run did not measure it."""

    unit: str = ""
    better: Better | None = None  # None: a setting or a volume, neither better nor worse
    groups: Group = Group.NONE
    short: str = ""  # the title of its bar chart, where the plot has no room for the label
    samples: s.Samples | s.SlopeSamples | None = None  # what the bootstrap resamples

    @property
    def title(self) -> str:
        """The label with its unit, for a table without a unit column (the comparison's)."""
        # A share is shown as a percentage on the value itself.
        return f"{self.label} ({self.unit})" if self.unit and self.unit != "%" else self.label


_KEY, _IF_MEASURED, _COMPARED, _BAR, _ROUTE = (
    Group.KEY, Group.KEY_WHEN_MEASURED, Group.COMPARED, Group.BAR, Group.PER_ROUTE,
)  # fmt: skip
_LATENCY = _KEY | _COMPARED | _ROUTE

FIELDS: tuple[Field, ...] = (
    Field("run_id", "run id (the run dir's name)", meta_fields),
    Field("scenario", "scenario slug", meta_fields),
    Field("variant", "faulty or fixed", meta_fields),
    Field("status", "how the run ended (meta.json)", meta_fields),
    Metric("duration_s", "load duration", meta_fields, unit="s", groups=_KEY),
    Metric("requests", "requests", locust_totals, groups=_KEY | _ROUTE),
    Metric("failures", "failures", locust_totals, better="lower", groups=_KEY | _ROUTE),
    Metric("rps", "throughput", locust_totals, unit="req/s", better="higher",
           groups=_KEY | _COMPARED | _BAR, short="requests/s",
           samples=s.Samples(s.rps, s.mean)),
    Metric("p50_ms", "p50 response time", percentiles, unit="ms", better="lower",
           groups=_LATENCY, samples=s.Samples(s.locust_percentile("p50"), s.median)),
    Metric("p95_ms", "p95 response time", percentiles, unit="ms", better="lower",
           groups=_LATENCY | _BAR, short="p95 (ms)",
           samples=s.Samples(s.locust_percentile("p95"), s.median)),
    Metric("p99_ms", "p99 response time", percentiles, unit="ms", better="lower",
           groups=_LATENCY | _BAR, short="p99 (ms)",
           samples=s.Samples(s.locust_percentile("p99"), s.median)),
    Metric("max_ms", "max response time (Locust)", locust_totals, unit="ms", better="lower",
           groups=_KEY),
    Field("percentiles_from", "where p50/p95/p99 come from: requests.csv or locust_stats.csv",
          percentiles),
    Metric("error_rate", "error rate", locust_totals, unit="%", better="lower",
           groups=_KEY | _COMPARED | _BAR, samples=s.Samples(s.error_rows, s.ratio_of_sums)),
    Metric("rss_slope_mb_per_10k_requests", "RSS slope after warm-up", rss_numbers,
           unit="MB / 10k requests", better="lower", groups=_KEY | _COMPARED | _BAR,
           short="RSS slope (MB/10k req)",
           samples=s.SlopeSamples(s.rss_points, scale=10_000)),
    Metric("rss_start_mb", "app RSS at start", rss_numbers, unit="MB", better="lower",
           groups=_KEY),
    Metric("rss_end_mb", "app RSS at end", rss_numbers, unit="MB", better="lower",
           groups=_KEY | _COMPARED | _BAR, short="RSS end (MB)"),
    Metric("rss_peak_mb", "app RSS peak", rss_numbers, unit="MB", better="lower",
           groups=_KEY),
    Metric("rss_growth_mb", "rise of app RSS above its start", rss_numbers, unit="MB",
           better="lower"),
    Metric("peak_rss_mb", "largest app process's peak RSS (kernel high-water mark)",
           rss_numbers, unit="MB", better="lower", groups=_KEY),
    Metric("peak_rss_growth_mb", "rise of that peak under load", rss_numbers, unit="MB",
           better="lower", groups=_KEY),
    Metric("event_loop_lag_p99_ms", "event-loop lag p99", app_numbers, unit="ms",
           better="lower", groups=_KEY | _COMPARED | _BAR, short="loop lag p99 (ms)",
           samples=s.Samples(s.loop_lag_p99_ms, s.median)),
    Metric("server_p95_ms", "p95 server-side duration", app_numbers, unit="ms",
           better="lower", groups=_KEY | _COMPARED,
           samples=s.Samples(s.server_p95_ms, s.median)),
    Metric("app_cpu_seconds", "app CPU time", app_numbers, unit="s", better="lower",
           groups=_KEY),
    Metric("locust_cpu_seconds", "Locust CPU time", app_numbers, unit="s", groups=_KEY),
    Metric("app_cpu_ms_per_request", "app CPU per request", app_numbers, unit="ms",
           better="lower", groups=_KEY | _COMPARED | _BAR, short="app CPU (ms/req)",
           samples=s.Samples(cpu_per_request_samples, s.cpu_ms_per_request)),
    # Busy cores are the cost of a request or the parallelism a fix gains: no direction.
    Metric("app_cpu_cores", "cores the app kept busy (mean)", app_numbers, groups=_KEY),
    # Where the time goes: no per-second series, so reported but not bootstrapped.
    Metric("db_time_share", "share of request time in the DB", diagnosis_numbers,
           better="lower", groups=_KEY | _COMPARED),
    Metric("db_queries_per_request", "DB queries per request", diagnosis_numbers,
           better="lower", groups=_KEY | _COMPARED),
    Metric("upstream_calls_per_request", "upstream calls per request", diagnosis_numbers,
           better="lower", groups=_KEY | _COMPARED),
    Field("responses_by_status", "the app's responses by status code (/metrics excluded)",
          diagnosis_numbers),
    Metric("unhandled_error_rate", "unhandled 500s / responses", diagnosis_numbers,
           better="lower", groups=_COMPARED),
    Metric("db_pool_checked_out_end", "DB pool connections checked out at the end",
           diagnosis_numbers, better="lower"),
    Metric("work_items_per_second", "work items processed per second", diagnosis_numbers,
           unit="items/s", better="higher"),
    Metric("work_items_rejected", "work items rejected", diagnosis_numbers, unit="items",
           better="lower"),
    Metric("etl_jobs_completed", "ETL jobs completed", etl_numbers, groups=_IF_MEASURED),
    Metric("etl_rows_extracted", "ETL rows read from the source", etl_numbers, unit="rows",
           groups=_IF_MEASURED),
    Metric("etl_rows_loaded", "ETL rows committed to the target", etl_numbers, unit="rows",
           groups=_IF_MEASURED),
    Metric("etl_duplicate_rows", "rows the ETL jobs' targets hold twice", etl_numbers,
           unit="rows", better="lower", groups=_IF_MEASURED),
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
