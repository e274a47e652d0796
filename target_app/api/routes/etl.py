"""ETL jobs triggered through the API: run in the request (etl-in-memory), or as a job
(long-task-inline) with its status and its events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from redis.asyncio import Redis

from faults import etl_in_memory, long_task_inline
from faults.long_task_inline import QueueUnavailable, job_links
from target_app.api.deps import DbSession, SeamsDep, SettingsDep, redis_of
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.api.params import ID_MAX
from target_app.db import Database
from target_app.etl import TERMINAL, NeedsPostgres, run_job
from target_app.jobs import events_channel
from target_app.models import EtlJob

__all__ = ["router"]

router = APIRouter(prefix="/etl", tags=["etl"], responses=responses(422, 500))

NEEDS_POSTGRES = (
    503,
    "the job needs PostgreSQL (its COPY) and DATABASE_URL names another database",
)
JobId = Annotated[int, Path(ge=1, le=ID_MAX, description="a job's id")]
Limit = Annotated[
    int | None, Query(ge=1, le=ID_MAX, description="products to snapshot (all: none)")
]
# Without an event for this long, the stream re-reads the job's row: an event
# lost (published while Redis was unreachable) costs one poll, not the stream.
EVENT_POLL_S = 5.0


@router.post("/product-snapshots", responses=responses(NEEDS_POSTGRES, DATABASE_DOWN))
def product_snapshots(
    session: DbSession,
    seams: SeamsDep,
    limit: Limit = None,
    fail_at: Annotated[
        float | None,
        Query(gt=0, lt=1, description="inject a failure in the first attempt at this fraction"),
    ] = None,
) -> dict[str, Any]:
    """Snapshot the products (price with tax, normalised name) into product_snapshots.

    Runs the job to the end in this request (a worker thread): one retry after a
    failure, then the answer says what each attempt did and what the target holds.
    The lab's measurement route for etl-in-memory (Locust times the job);
    `POST /etl/jobs` is how an API should start one.
    """
    etl = seams.pick(etl_in_memory.SCENARIO)
    try:
        return run_job(session, etl, limit=limit, fail_at=fail_at).as_dict()
    except NeedsPostgres as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(
        NEEDS_POSTGRES, (503, "no job queue: Redis is not configured or refused the job"),
        DATABASE_DOWN,
    )
    | {200: {"description": "the job ran in the request (the long-task-inline fault)"}},
)  # fmt: skip
def submit_job(
    session: DbSession, seams: SeamsDep, settings: SettingsDep, limit: Limit = None
) -> JSONResponse:
    """Start a product-snapshot job: 202 with its status URL (`Location`) and its
    events URL (Server-Sent Events), a worker runs it (the long-task-inline seam)."""
    launcher = seams.pick(long_task_inline.SCENARIO)
    etl = seams.pick(etl_in_memory.SCENARIO)
    try:
        submitted = launcher.submit(session, etl, limit, settings.redis_url)
    except (NeedsPostgres, QueueUnavailable) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    body = submitted.body
    headers = {"Location": body["status_url"]} if "status_url" in body else None
    return JSONResponse(body, status_code=submitted.status_code, headers=headers)


def _job_out(job: EtlJob) -> dict[str, Any]:
    scoped = job.attempts > 0 or job.status != "queued"  # a queued job's first run scopes it
    return {
        "job_id": job.id, "status": job.status, "attempts": job.attempts,
        "rows_expected": job.rows_expected if scoped else None,
        "checkpoint": job.last_product_id,
        "until_product_id": job.until_product_id if scoped else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        **job_links(job.id),
    }  # fmt: skip


def _read_job(database: Database, job_id: int) -> dict[str, Any] | None:
    with database.sessions() as session:
        job = session.get(EtlJob, job_id)
        return None if job is None else _job_out(job)


@router.get("/jobs/{job_id}", responses=responses((404, "no such job"), DATABASE_DOWN))
def job_status(job_id: JobId, session: DbSession) -> dict[str, Any]:
    """The job's state (queued, running, done, failed), its runs and its checkpoint."""
    job = session.get(EtlJob, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return _job_out(job)


async def _events_source(job_id: JobId, request: Request) -> tuple[int, Redis]:
    """The job and the Redis its events come from, or the error, before the stream
    starts (once it has, a status code can no longer be sent). One dependency, so
    that a bad id is a 422 before anything else is looked at."""
    database: Database = request.app.state.db
    if await anyio.to_thread.run_sync(_read_job, database, job_id) is None:
        raise HTTPException(404, f"no job {job_id}")
    return job_id, await redis_of(request)


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses=responses((404, "no such job"), (503, "no Redis configured (REDIS_URL)")),
)
async def job_events(
    source: Annotated[tuple[int, Redis], Depends(_events_source)], request: Request
) -> AsyncIterator[ServerSentEvent]:
    """The job's state now, then each change until it is done or failed (`event: state`;
    FastAPI sends a keep-alive comment every 15 s of silence)."""
    job_id, redis = source
    database: Database = request.app.state.db
    pubsub = redis.pubsub()
    # Subscribed before the row is read: a change published in between is then
    # in the subscription, never lost between the read and the subscribe.
    await pubsub.subscribe(events_channel(job_id))
    try:
        job = await anyio.to_thread.run_sync(_read_job, database, job_id)
        if job is None:
            return
        yield ServerSentEvent(event="state", data=job)
        state = job["status"]
        while state not in TERMINAL:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=EVENT_POLL_S)
            if message is None:
                job = await anyio.to_thread.run_sync(_read_job, database, job_id)
                if job is None:
                    return
                if job["status"] == state:
                    continue
                event = job
            else:
                event = json.loads(message["data"])
            state = event.get("state") or event.get("status") or state
            yield ServerSentEvent(event="state", data=event)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py's PubSub is unannotated
