"""The job worker: `dramatiq target_app.worker:setup --processes 1 --threads 1`.

`setup()` makes the worker's broker global (Dramatiq's CLI takes it from there)
and declares the job's actor on it (target_app/jobs.py). Each worker
process builds, once, what the app's factory builds: its settings, database,
fault runtime (the same toggle file as the app, so the job runs the ETL variant
that is on) and a Redis client for the job's events.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

import httpx
from redis import Redis

import faults
from faults import etl_in_memory, sync_webhook
from target_app import jobs
from target_app.clients.payments import payment_provider
from target_app.db import Database
from target_app.etl import AttemptsExhausted, fail_job, require_postgres, run_queued
from target_app.observability import configure_logging
from target_app.settings import Settings, get_settings

__all__ = ["apply_webhook", "fail_snapshot", "run_snapshot", "setup"]

log = logging.getLogger("target_app.worker")


@dataclass
class _Process:
    settings: Settings
    db: Database
    seams: faults.FaultRuntime
    redis: Redis
    # The payment provider's API, for the webhook consumer (None: no UPSTREAM_URL).
    provider: httpx.Client | None


_lock = threading.Lock()


@functools.cache
def _make_state() -> _Process:
    settings = get_settings()
    assert settings.redis_url is not None  # worker_broker() refused without it
    store = faults.ToggleStore(settings.lab_state_file)
    return _Process(
        settings=settings,
        db=Database(settings),
        seams=faults.FaultRuntime(
            store, seams=settings.lab_instrumentation and not settings.is_production
        ),
        redis=Redis.from_url(settings.redis_url),
        provider=payment_provider(settings.upstream_url) if settings.upstream_url else None,
    )


def _state() -> _Process:
    """The process's state, built by the first job (its threads race for it)."""
    with _lock:
        return _make_state()


def run_snapshot(job_id: int, limit: int | None) -> None:
    """One run of the snapshot job; an exception is Dramatiq's to retry."""
    state = _state()
    etl = state.seams.pick(etl_in_memory.SCENARIO)
    jobs.publish(state.redis, job_id, {"state": "running"})
    with state.db.sessions() as session:
        require_postgres(session)
        try:
            report = run_queued(session, etl, job_id, limit, jobs.MAX_ATTEMPTS)
        except AttemptsExhausted as exc:
            log.error("%s: failed", exc)
            jobs.publish(state.redis, job_id, {"state": "failed", "error": str(exc)})
            return
    if report is None:
        log.info("job %s had already finished: nothing to do", job_id)
        jobs.publish(state.redis, job_id, {"state": "done"})
        return
    log.info("job %s done: %s rows in %.2f s", job_id, f"{report.rows_in_target:,}", report.seconds)
    jobs.publish(state.redis, job_id, {"state": "done", "report": report.as_dict()})


def apply_webhook(event_id: str) -> None:
    """The webhook consumer: apply one received payment event exactly once
    (faults/sync_webhook.py, `apply_once`); an exception is Dramatiq's to retry."""
    state = _state()
    if state.provider is None:
        raise RuntimeError("the webhook consumer needs the payment provider: set UPSTREAM_URL")
    with state.db.sessions() as session:
        applied = sync_webhook.apply_once(session, state.provider, event_id)
    if not applied:
        log.info("webhook event %s was applied already: nothing to do", event_id)


def fail_snapshot(job_id: int, error: str) -> None:
    """Dramatiq's retries are exhausted: the job failed."""
    state = _state()
    with state.db.sessions() as session:
        fail_job(session, job_id)
    log.error("job %s failed: %s", job_id, error)
    jobs.publish(state.redis, job_id, {"state": "failed", "error": error})


def setup() -> None:
    """Dramatiq's CLI calls this in each of its processes (`target_app.worker:setup`),
    then takes the global broker it set."""
    settings = get_settings()
    configure_logging(settings.log_level)
    jobs.worker_broker(settings)
