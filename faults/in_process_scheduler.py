"""in-process-scheduler (seed 26): a periodic job scheduled inside every web worker.

The app sends a sales digest (the orders and revenue of the last period) on a
schedule, with APScheduler running in the app's event loop (target_app/
scheduler.py). That is how the seed question's "cron job inside FastAPI" is
usually built, and it works on a laptop: one process, one scheduler. Deployed
with gunicorn's `-w 2` (or two replicas), every worker process starts its own
scheduler, and every tick's digest is sent once per worker.

Seam: `TickClaim`, which each worker's scheduler asks before it runs a tick's
job. The faulty variant claims every tick in every process. The fixed one
takes a Redis lock named after the job and the tick (redis-py's `Lock`, which
is SET NX PX with a token), without blocking: one worker wins the tick, the
others skip it. The lock is not released when the job ends but left to expire
after one interval: a worker whose timer fires late (a busy event loop) must
still find that tick taken.

The measurement is the digests' own table (`sales_digests`, one row per send,
no unique key on purpose): the contract test counts the sends per tick in
PostgreSQL. When Redis does not answer, the fixed variant skips the tick (a
digest missed, logged) rather than send it from every worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError

from faults._contract import Answer, Scenario, Symptom, Variant
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SCENARIO", "EveryProcess", "RedisTickLock", "TickClaim", "TickLockUnavailable"]

log = logging.getLogger("faults.in_process_scheduler")


class TickClaim(Protocol):
    """The seam: may this process run `job`'s run of schedule tick `tick`?"""

    async def claim(self, job: str, tick: int, lease_s: float, redis: Redis | None) -> bool: ...


class ClaimParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TickLockUnavailable(RuntimeError):
    """No Redis to take the tick's lock in: the tick is skipped."""


# --- faulty -----------------------------------------------------------------


class EveryProcess:
    """Every scheduler runs every tick: right for one process, wrong for N."""

    def __init__(self, params: ClaimParams) -> None:
        pass

    async def claim(self, job: str, tick: int, lease_s: float, redis: Redis | None) -> bool:
        return True


# --- fixed ------------------------------------------------------------------


class RedisTickLock:
    """One run per tick across processes: the first to take the tick's lock runs it."""

    def __init__(self, params: ClaimParams) -> None:
        pass

    async def claim(self, job: str, tick: int, lease_s: float, redis: Redis | None) -> bool:
        if redis is None:
            raise TickLockUnavailable(
                "the periodic jobs' lock needs Redis: set REDIS_URL (`make up` runs it)"
            )
        # Named by the tick, not only by the job: a lock per job alone would let
        # a worker whose timer fires after the winner released it run the tick
        # again. Never released: it expires after the lease (one interval).
        lock = redis.lock(f"lab:periodic:{job}:{tick}", timeout=lease_s, blocking=False)
        try:
            # Half an interval at most: a tick whose lock cannot be had by then
            # is better skipped than run late by every worker.
            async with asyncio.timeout(lease_s / 2):
                return bool(await lock.acquire())
        except (RedisError, TimeoutError) as exc:
            reason = f"tick {tick} of {job}: Redis did not answer ({exc!r})"
            raise TickLockUnavailable(reason) from exc


def prepare(variant: Variant, database_url: str) -> None:
    """The schema at head (the digests' table is migration 0005), and no digest yet."""
    from target_app.migrate import upgrade_and_empty

    upgrade_and_empty(database_url, "sales_digests")


def _signature(s: Signs) -> Finding | None:
    """A schedule run by every worker: a periodic job runs more than once per tick."""
    per_tick = s.number("periodic_runs_per_tick")
    score = strength(per_tick, 1.0, span=2.0)
    return finding(
        "in-process-scheduler",
        score,
        (
            Clue("runs of a periodic job per schedule tick", per_tick, "1"),
            Clue("app worker processes", float(s.workers)),
        ),
    )


SCENARIO: Scenario[TickClaim, ClaimParams] = Scenario(
    signature=_signature,
    slug="in-process-scheduler",
    title="A periodic job scheduled inside every web worker runs once per worker",
    seeds=(26,),
    kind="fault",
    summary=(
        "APScheduler started in the app's lifespan sends the sales digest every interval; "
        "under gunicorn with 2 workers each worker has its own scheduler and every digest "
        "goes out twice. Fixed: each tick is claimed with a Redis lock named after it "
        "(redis-py's Lock, non-blocking, left to expire), so exactly one worker sends it."
    ),
    faulty=EveryProcess,
    fixed=RedisTickLock,
    params=ClaimParams,
    requires=("postgres", "redis"),
    prepare=prepare,
    app_workers=2,
    # Every 2 s instead of every hour: a 30 s run holds 15 ticks.
    app_env={"SCHEDULER_ENABLED": "true", "SCHEDULER_INTERVAL_S": "2"},
    default_load={"users": 4, "duration": "30s"},
    symptom=Symptom(
        # The requirement: a periodic job runs once per tick, however many
        # processes serve the API. More than one run per tick, on average over
        # the run, is the fault; counted from the digests' table by the app's
        # /metrics (periodic_job_runs / periodic_job_ticks).
        metric="periodic_runs_per_tick",
        op=">",
        threshold=1.0,
        description="the periodic job runs more than once per tick: once per worker",
    ),
    answers=(
        Answer(
            "You need a cron job inside FastAPI. How to implement it?",
            """\
Don't tie it to the web workers. The tempting version is APScheduler's `AsyncIOScheduler`
started in the app's lifespan, and it is fine for one process. This lab's app sends a sales
digest that way (target_app/scheduler.py), and served by gunicorn with 2 workers it sends
{faulty.periodic_runs_per_tick} digests per tick ({faulty.periodic_duplicate_runs} duplicate
sends in the run). If the job must live in the app, make each tick a claim: the fixed variant
takes a Redis lock named after the job and the tick (`redis.lock(f"...:{{tick}}",
timeout=interval, blocking=False)`), and only the worker that gets it runs the tick:
{fixed.periodic_runs_per_tick} runs per tick, counted in PostgreSQL from the digests' own
rows, none lost. Make the job itself idempotent too (a unique key on the tick), since
a lock only holds while Redis does. Reproduce with `make fault=in-process-scheduler compare`.""",
        ),
        Answer(
            "Why is APScheduler risky inside web worker?",
            """\
Because the web server decides how many copies of it run and when they stop. Every worker
process (gunicorn `-w`, uvicorn `--workers`, each replica) starts its own scheduler: N
workers run each job N times ({faulty.periodic_runs_per_tick} per tick here with 2). A
worker that gunicorn recycles (`max_requests`) or kills on `--timeout` takes a running job
with it; a scale-down to zero runs nothing; the job's CPU competes with requests on the
same event loop or threadpool. APScheduler has no way for schedulers in several processes
to agree on who runs a job (its user guide: a job store must never be shared between
schedulers). A per-tick lock fixes the duplicates, not the coupling.""",
        ),
        Answer(
            "How to use external scheduler?",
            """\
Run the schedule in one place and the work in the workers. In production that is a
Kubernetes `CronJob` or a systemd timer calling a command (`python -m app.jobs digest`),
or one dedicated scheduler process (APScheduler with a single replica, Celery beat, a
Dramatiq `periodiq` process) that only enqueues a job on the queue the workers consume
(this lab's Dramatiq queue, target_app/jobs.py). Give it `concurrencyPolicy: Forbid` (or
`max_instances=1`) so a slow run does not overlap the next one, make the job idempotent per
period, and alert on a missed run, not only on a failed one. Keep the in-app lock of the
fixed variant when a second scheduler can start by accident (a deploy's old and new pods).""",
        ),
    ),
    diagnosis="""\
**What you see.** Customers or the team get every digest, e-mail or invoice
run twice (or once per worker); rows written by a periodic job come in pairs
with the same period; the job's logs show the same tick from several pids.
`periodic_job_runs / periodic_job_ticks` on the dashboard is the number of
workers instead of 1.

**Find it.** `lab run in-process-scheduler`: `periodic_runs_per_tick` in the
report; in PostgreSQL, `SELECT tick, count(*), array_agg(sent_by) FROM
sales_digests GROUP BY tick HAVING count(*) > 1` names the processes.

**Fix.** One scheduler: a CronJob, a timer or a single scheduler process that
enqueues the job. If the job must stay in the app, claim each tick with a lock
(`redis.lock(name_with_tick, timeout=interval, blocking=False)`) and make the
job idempotent per period.

**Measured.** The page's "Measured" block and the answers above carry the numbers of the
lab's latest run of both variants (`make fault=in-process-scheduler compare`).
""",
)
