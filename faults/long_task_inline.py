"""long-task-inline (seed 4): a job of minutes runs inside the request that starts it.

Seam: a `JobLauncher`, how `POST /etl/jobs` runs the product-snapshot ETL job
(target_app/etl.py; the job itself is the etl-in-memory seam, its fixed
checkpointed variant unless that fault is on). The job is real work: it reads
the products in keyset chunks, transforms them and COPYs them into
product_snapshots, 7 to 20 us a row on these 2-core machines (quiet or loaded),
so the workload's 100,000 rows take 0.7 to 2 s (standing for the 5 minutes of
the seed question).

The faulty variant runs the job in the request: the client waits the job's
time for its answer (and a proxy's 60 s timeout, a deploy or a crash of the API
process loses the job half-way, with nobody to resume it).

The fixed variant writes the job's row (`queued`), hands its id to the job
queue (Dramatiq on Redis, target_app/jobs.py), and answers 202 with the job's
status URL and events URL (Server-Sent Events: the completion is pushed). A
worker process runs it; a worker killed mid-job leaves its message
unacknowledged, the queue gives it to another worker, and the checkpoint makes
the second run resume where the first one's last commit stopped: each job's
snapshot holds each product exactly once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict

from faults._contract import Answer, Scenario, Symptom, Variant
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from target_app.etl import Etl

__all__ = ["SCENARIO", "InlineJob", "JobLauncher", "QueuedJob", "Submitted"]

log = logging.getLogger("faults.long_task_inline")


class Submitted(NamedTuple):
    """What the route answers: its status code and body."""

    status_code: int
    body: dict[str, Any]


class JobLauncher(Protocol):
    """The long-task-inline seam: start the snapshot job of the first `limit` products."""

    def submit(
        self, session: Session, etl: Etl, limit: int | None, redis_url: str | None
    ) -> Submitted: ...


class LaunchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueUnavailable(RuntimeError):
    """No job queue to hand the job to (no Redis configured, or Redis refused it)."""


def job_links(job_id: int) -> dict[str, str]:
    return {"status_url": f"/etl/jobs/{job_id}", "events_url": f"/etl/jobs/{job_id}/events"}


# --- faulty -----------------------------------------------------------------


class InlineJob:
    """Run the job to its end in the request, and answer with its report."""

    def __init__(self, params: LaunchParams) -> None:
        pass

    def submit(
        self, session: Session, etl: Etl, limit: int | None, redis_url: str | None
    ) -> Submitted:
        from target_app.etl import run_job

        report = run_job(session, etl, limit=limit)
        return Submitted(200, {"status": "done", **job_links(report.job_id), **report.as_dict()})


# --- fixed ------------------------------------------------------------------


class QueuedJob:
    """Record the job, queue it, answer 202 at once: a worker runs it."""

    def __init__(self, params: LaunchParams) -> None:
        pass

    def submit(
        self, session: Session, etl: Etl, limit: int | None, redis_url: str | None
    ) -> Submitted:
        from target_app.etl import fail_job, queue_job, require_postgres
        from target_app.jobs import job_queue

        if not redis_url:
            raise QueueUnavailable("the job queue needs Redis: set REDIS_URL (`make up` runs it)")
        require_postgres(session)
        job = queue_job(session)
        # The row is committed before the message is sent, so a worker that
        # takes the message at once finds its job. If the send fails, the row
        # would stay `queued` with no message behind it: it is failed instead,
        # and the client is told to retry.
        try:
            job_queue(redis_url).enqueue_snapshot(job.id, limit)
        except Exception as exc:
            fail_job(session, job.id)
            log.warning("job %s could not be queued: %s", job.id, exc)
            raise QueueUnavailable(f"the job queue refused job {job.id}: {exc}") from exc
        return Submitted(
            202,
            {"job_id": job.id, "status": "queued", **job_links(job.id)},
        )


def prepare(variant: Variant, database_url: str) -> None:
    """The ETL tables at head and empty, as etl-in-memory starts them."""
    from faults.etl_in_memory import prepare as prepare_etl

    prepare_etl(variant, database_url)


def _signature(s: Signs) -> Finding | None:
    """A job's work done inside the request that asked for it: a write (POST) that
    takes its client over half a second and runs many queries before answering."""
    q = s.number("db_queries_per_request")
    if q is None or q >= 1000 or s.slowest_method in ("GET", ""):
        return None
    score = min(strength(q, 20.0), strength(s.number("p50_ms"), 500.0))
    return finding(
        "long-task-inline",
        score,
        (
            Clue("DB queries per request", q, "< 20"),
            Clue("client p50", s.number("p50_ms"), "< 500", "ms"),
        ),
    )


SCENARIO: Scenario[JobLauncher, LaunchParams] = Scenario(
    signature=_signature,
    slug="long-task-inline",
    title="A job of minutes runs inside the request that starts it",
    seeds=(4,),
    kind="fault",
    summary=(
        "POST /etl/jobs runs the product-snapshot job (2 s here, minutes in production) "
        "before it answers, so the request's latency is the job's; fixed: a row, a message "
        "on a Dramatiq queue on Redis, 202 with a status URL and a Server-Sent Events URL, "
        "and a worker process that runs each job exactly once, also when it is killed."
    ),
    faulty=InlineJob,
    fixed=QueuedJob,
    params=LaunchParams,
    requires=("postgres", "redis"),
    workload="etl_jobs",
    prepare=prepare,
    job_workers=1,
    # One job every 2 s, the same offered in both variants (open model): the
    # worker finishes one in about 2 s, so the queue keeps up, and the run then
    # waits for the last ones (lab/runner.py, _drain_jobs).
    default_load={"rate": 0.5, "duration": "40s"},
    symptom=Symptom(
        # The requirement (the issue's): a submission answers in under 50 ms,
        # whatever the job's length. Taken at the median, because "the answer
        # waits for the job" shows in every answer: the faulty p50 is the job's
        # time. The tail is another story, measured and shown on the page: while
        # a job COPYs 100,000 rows into the same PostgreSQL on the same 2 cores,
        # about one submission in seven waits 100-170 ms for its commit (a 6 ms
        # commit takes 65-110 ms next to the COPY), so the fixed p95 here is over
        # 100 ms: on this machine 50 ms holds at the median (about 17 ms), not at p95.
        metric="p50_ms",
        op=">",
        threshold=50.0,
        description="submitting a job waits for the job: the median answer takes the job's time",
    ),
    answers=(
        Answer(
            "You have a task that takes 5 minutes. How do you execute it without blocking "
            "API responses?",
            """\
Don't run it in the request: record it, queue it, answer 202 with where to follow it. The
faulty `POST /etl/jobs` runs the snapshot job (seconds here) before it answers: p95
{faulty.p95_ms} ms, the job's time, and a proxy timeout or a restart of the API loses the
job half-way. The fixed one writes the job's row, sends its id to a Dramatiq queue on Redis
and answers 202 with a status URL and an events URL: p95 {fixed.p95_ms} ms, p50
{fixed.p50_ms} ms (requirement: under 50 ms; the tail is the job's COPY sharing
PostgreSQL and 2 cores with the API's commits). A worker process runs the job; killed with
SIGKILL mid-job, its message is given to another worker and the job's checkpoint resumes
it: the contract test counts each job's rows in PostgreSQL, each product exactly once.
Reproduce with
`make fault=long-task-inline compare`.""",
        ),
        Answer(
            "Why use Celery/RQ/background tasks?",
            """\
Because a job needs what a request cannot give it: a process that outlives the request, a
retry when it fails, and a record of its state. FastAPI's `BackgroundTasks` runs after the
response but in the API process: a deploy or a crash loses it, nothing retries it, and it
takes the API's CPU. A queue (here Dramatiq: it acknowledges a message only after the job
returns, and requeues the jobs of a worker that stopped heartbeating) gives at-least-once
delivery; the job makes it exactly-once by being idempotent (a checkpoint committed with
each chunk). Submitting stays at a median of {fixed.p50_ms} ms however long the job.""",
        ),
        Answer(
            "How do you notify users when task completes?",
            """\
Push it: `GET /etl/jobs/{id}/events` is a Server-Sent Events stream (FastAPI's own
`EventSourceResponse`) that sends the job's state at once, then each change the worker
publishes on the job's Redis channel (`running`, `done` with its report, `failed`), with a
keep-alive ping. The client subscribes right after the 202; a client that reconnects gets
the current state first, so a completion published while it was away is not missed. `GET
/etl/jobs/{id}` is the poll for clients that cannot hold a stream; a webhook or an e-mail
suits a job of hours.""",
        ),
    ),
    diagnosis="""\
**What you see.** The job's endpoint is slow and the rest of the API is not:
`POST /etl/jobs` p95 is the job's time (seconds), every answer is 200 with the
finished job in it, and the app's threadpool holds one thread per running job.
Under a proxy with a 60 s timeout a longer job is a 504 whose work still runs.

**Find it.** `lab run long-task-inline` (the faulty p95 in the report);
`lab run long-task-inline --profile py-spy` shows the request threads inside
`run_job` -> `CheckpointedEtl.run` -> `copy_snapshots`: the request is doing the
job.

**Fix.** Record the job, queue it and answer 202 with its status URL; run it in
a worker process (Dramatiq, Celery, RQ, arq); make the job idempotent so the
queue's at-least-once delivery is exactly-once in effect; push the completion
(SSE or a WebSocket) and keep the state in the job's row. Count `background_jobs{state}`
(queued, running, done, failed) on the dashboard: a growing `queued` means the
workers do not keep up.

**Measured.** The page's "Measured" block and the answers above carry the numbers of the
lab's latest run of both variants (`make fault=long-task-inline compare`).
""",
)
