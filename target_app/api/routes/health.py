"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import logging
import os

import anyio
from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from target_app import metrics
from target_app.api.deps import DbSession
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.db import Database
from target_app.etl import job_states

log = logging.getLogger("target_app.metrics")

__all__ = ["router"]

router = APIRouter(tags=["ops"], responses=responses(500))


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
    for state in metrics.JOB_STATES:
        metrics.BACKGROUND_JOBS.labels(state).set(states.get(state, 0))


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    if request.app.state.settings.jobs_enabled:
        # The jobs' table is the truth (the queue's keys do not keep finished
        # jobs); a database that does not answer leaves the last numbers.
        try:
            with anyio.fail_after(2.0):
                await anyio.to_thread.run_sync(
                    _count_jobs, request.app.state.db, abandon_on_cancel=True
                )
        except Exception as exc:
            log.warning("background_jobs not refreshed: %s", exc)
    body, content_type = metrics.render_latest()
    return Response(body, media_type=content_type)
