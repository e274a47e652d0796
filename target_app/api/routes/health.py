"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import anyio
from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from faults import microservice_cascade, sync_webhook
from target_app import metrics, scheduler
from target_app.api.deps import DbSession
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.db import Database
from target_app.etl import job_states

log = logging.getLogger("target_app.metrics")

__all__ = ["router"]

router = APIRouter(tags=["ops"], responses=responses(500))
# The job state each webhook inbox status counts as (webhook_counts' keys): a received
# event is a queued job until its consumer applies it; no inbox row is ever "running".
INBOX_AS_JOB = {"inbox_received": "queued", "inbox_applied": "done", "inbox_failed": "failed"}


@router.get("/healthz")
async def healthz() -> dict[str, object]:
    """The process is up. Cheap on purpose: it is also the 'unrelated endpoint' of scenarios."""
    return {"status": "ok", "pid": os.getpid()}


@router.get("/readyz", responses=responses(DATABASE_DOWN))
def readyz(session: DbSession) -> dict[str, object]:
    """Ready to serve: the database answers."""
    session.execute(text("SELECT 1"))
    return {"status": "ready", "pid": os.getpid()}


def _count_jobs(database: Database) -> None:
    with database.sessions() as session:
        states = job_states(session)
    try:
        with database.sessions() as session:
            hooks = sync_webhook.webhook_counts(session)
    except SQLAlchemyError as exc:  # a database from before migration 0007: no webhooks
        log.debug("webhook counts unavailable: %s", exc)
        hooks = {"payments": 0, "paid_events": 0}
    counts = {state: states.get(state, 0) for state in metrics.JOB_STATES}
    for inbox, state in INBOX_AS_JOB.items():
        counts[state] += hooks.get(inbox, 0)
    for state, count in counts.items():
        metrics.BACKGROUND_JOBS.labels(state).set(count)
    metrics.WEBHOOK_PAYMENTS.labels("payments").set(hooks["payments"])
    metrics.WEBHOOK_PAYMENTS.labels("events").set(hooks["paid_events"])


def _count_placements(database: Database) -> None:
    """Placed orders by status and the outbox's undelivered messages (microservice-cascade)."""
    with database.sessions() as session:
        by_status, undelivered = microservice_cascade.placement_counts(session)
    for status, count in by_status.items():
        metrics.PLACED_ORDERS.labels(status).set(count)
    metrics.OUTBOX_MESSAGES.set(undelivered)


async def _refresh(what: str, count: Callable[[Database], None], database: Database) -> None:
    """Gauges counted from a table at a scrape; a database that does not answer
    (in 2 s) leaves the last numbers, and the scrape still answers."""
    try:
        with anyio.fail_after(2.0):
            await anyio.to_thread.run_sync(count, database, abandon_on_cancel=True)
    except Exception as exc:
        log.warning("%s not refreshed: %s", what, exc)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    settings, database = request.app.state.settings, request.app.state.db
    if settings.jobs_enabled:
        # The jobs' table is the truth (the queue's keys do not keep finished jobs).
        await _refresh("background_jobs", _count_jobs, database)
    if settings.inventory_url:
        await _refresh("placed_orders", _count_placements, database)
    if settings.scheduler_enabled:
        await _refresh("periodic_job_runs", scheduler.refresh_metrics, database)
    body, content_type = metrics.render_latest()
    return Response(body, media_type=content_type)
