"""The lab's metrics: one list, shared by the app, the dashboards and the reports.

Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR and `/metrics`
aggregates them (prometheus-client's multiprocess mode); gauges say how.
Renaming one of these means changing dashboards/ and reports/ in the same change.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "BACKGROUND_JOBS",
    "CACHE_ENTRIES",
    "CACHE_REQUESTS",
    "CIRCUIT_BREAKER_STATE",
    "DB_POOL_CHECKED_OUT",
    "DB_QUERIES_PER_REQUEST",
    "DB_QUERY_DURATION",
    "ETL_ATTEMPTS",
    "ETL_DUPLICATE_ROWS",
    "ETL_JOBS",
    "ETL_ROWS",
    "EVENT_LOOP_LAG",
    "FAULT_ACTIVE",
    "HTTP_IN_FLIGHT",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "JOB_STATES",
    "OUTBOX_MESSAGES",
    "PERIODIC_JOB_RUNS",
    "PERIODIC_JOB_TICKS",
    "PLACED_ORDERS",
    "UPSTREAM_REQUEST_DURATION",
    "WEBHOOK_PAYMENTS",
    "WORKER_CPU_SECONDS",
    "WORKER_RSS",
    "WORK_ITEMS",
    "render_latest",
]

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to the end of its response",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being served now", multiprocess_mode="livesum"
)
EVENT_LOOP_LAG = Histogram(
    "event_loop_lag_seconds",
    "How late the event loop ran a callback scheduled for a known time",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds", "Duration of one SQL statement", buckets=_LATENCY_BUCKETS
)
DB_QUERIES_PER_REQUEST = Histogram(
    "db_queries_per_request",
    "SQL statements run while serving one request",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000),
)
DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out", "Connections checked out of the pool", multiprocess_mode="livesum"
)
UPSTREAM_REQUEST_DURATION = Histogram(
    "upstream_request_duration_seconds",
    "Calls to third-party dependencies",
    ["dependency", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
CIRCUIT_BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "0 closed, 1 half-open, 2 open",
    ["dependency"],
    multiprocess_mode="livemax",
)
CACHE_REQUESTS = Counter("cache_requests_total", "Cache look-ups", ["cache", "result"])
CACHE_ENTRIES = Gauge(
    "cache_entries", "Entries held by an in-process cache", ["cache"], multiprocess_mode="livesum"
)
# Counted from the jobs' table at each scrape (routes/health.py), so every
# worker reports the same numbers: the most recent one is the value.
BACKGROUND_JOBS = Gauge(
    "background_jobs", "Background jobs by state", ["state"], multiprocess_mode="mostrecent"
)
JOB_STATES = ("queued", "running", "done", "failed")
# Payments recorded from payment webhooks (sync-webhook), counted from the payments
# table at a scrape: count="payments" rows, count="events" the distinct events they
# came from. payments - events is the events applied more than once.
WEBHOOK_PAYMENTS = Gauge(
    "webhook_payments", "Payments recorded from webhook events", ["count"],
    multiprocess_mode="mostrecent",
)  # fmt: skip
# Periodic jobs (target_app/scheduler.py): the ticks run at least once and the
# runs, counted from the job's own table at each scrape like background_jobs.
# runs / ticks is 1 when each tick runs once, whatever the number of workers.
PERIODIC_JOB_TICKS = Gauge(
    "periodic_job_ticks", "Schedule ticks a periodic job ran in", ["task"],
    multiprocess_mode="mostrecent",
)  # fmt: skip
PERIODIC_JOB_RUNS = Gauge(
    "periodic_job_runs", "Runs of a periodic job", ["task"], multiprocess_mode="mostrecent"
)
# Orders placed across the shop and the inventory service (microservice-cascade),
# by status, and the outbox messages not yet delivered: counted from their tables
# at a scrape. The run waits for outbox_messages to reach 0 after the load.
PLACED_ORDERS = Gauge(
    "placed_orders", "Orders placed with a stock reservation, by status", ["status"],
    multiprocess_mode="mostrecent",
)  # fmt: skip
OUTBOX_MESSAGES = Gauge(
    "outbox_messages", "Outbox messages not yet delivered", multiprocess_mode="mostrecent"
)
FAULT_ACTIVE = Gauge(
    "lab_fault_active",
    "1 while a scenario's faulty variant is on",
    ["scenario"],
    multiprocess_mode="livemax",
)

# The default process collector is absent in multiprocess mode; these are set
# by each worker once a second, with a `pid` label per worker under gunicorn.
WORKER_RSS = Gauge(
    "worker_resident_memory_bytes", "RSS of this worker", multiprocess_mode="liveall"
)
# Batch work done inside requests (imported rows, ETL records): its throughput
# is the number a batch scenario is judged by, not requests per second.
WORK_ITEMS = Counter("work_items_total", "Items of batch work processed", ["kind", "outcome"])
# ETL jobs (etl-in-memory): rows read and committed, attempts, and the rows a
# finished job's target holds more than once (what a retry from zero leaves).
ETL_ROWS = Counter("etl_rows_total", "Rows of ETL jobs, by outcome", ["outcome"])
ETL_ATTEMPTS = Counter(
    "etl_job_attempts_total", "Attempts of ETL jobs (failed, completed)", ["outcome"]
)
# A job counts as finished once its target is counted and its duplicates are in
# (target_app/etl.py): counting its last attempt instead let a scrape fall between
# the attempt's end and the target's count, a job without its duplicates.
ETL_JOBS = Counter("etl_jobs_total", "ETL jobs finished, their target's rows counted")
ETL_DUPLICATE_ROWS = Counter(
    "etl_duplicate_rows_total", "Rows a finished ETL job wrote more than once to its target"
)
WORKER_CPU_SECONDS = Gauge(
    "worker_cpu_seconds", "CPU time (user+system) used by this worker", multiprocess_mode="liveall"
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text: every worker's metrics when running under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
