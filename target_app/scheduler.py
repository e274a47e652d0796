"""Periodic jobs run by the app itself: APScheduler in the app's event loop.

With SCHEDULER_ENABLED the app's lifespan starts an `AsyncIOScheduler` that
sends the sales digest every SCHEDULER_INTERVAL_S seconds. Under gunicorn the
lifespan runs in every worker process, so every worker has a scheduler: that
is the in-process-scheduler scenario (faults/in_process_scheduler.py), whose
seam decides whether this process may run a given tick.

Ticks are counted from a fixed epoch, not from the process's start: the
trigger fires at EPOCH + k * interval in every process, so the workers agree
on what "tick k" is, and a lock or a row can be named after it.

"Sending" the digest records it in `sales_digests` (migration 0005): one row
per send, standing for the e-mail a real team would get. Those rows are the
measurement: /metrics counts them (periodic_job_runs, periodic_job_ticks) and
the contract test counts them in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from target_app import metrics
from target_app.models import Order, SalesDigest

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from faults import FaultRuntime
    from target_app.db import Database

__all__ = [
    "DIGEST",
    "EPOCH",
    "PeriodicJobs",
    "count_runs",
    "refresh_metrics",
    "send_sales_digest",
    "tick_of",
]

log = logging.getLogger("target_app.scheduler")

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DIGEST = "sales-digest"


def tick_of(moment: datetime, interval_s: float) -> int:
    """The schedule's tick that `moment` falls in: k for [EPOCH + k*i, EPOCH + (k+1)*i)."""
    return int((moment - EPOCH).total_seconds() // interval_s)


def send_sales_digest(database: Database, tick: int, interval_s: float) -> SalesDigest:
    """The digest of the tick's period: the orders placed in it and their revenue."""
    start = EPOCH + timedelta(seconds=tick * interval_s)
    end = start + timedelta(seconds=interval_s)
    # orders.created_at is a naive UTC timestamp (the database's now()).
    naive_start, naive_end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    with database.sessions() as session:
        placed = (Order.created_at >= naive_start) & (Order.created_at < naive_end)
        count, revenue = session.execute(
            select(func.count(Order.id), func.coalesce(func.sum(Order.total), 0)).where(placed)
        ).one()
        digest = SalesDigest(
            job=DIGEST, tick=tick, period_start=naive_start, period_end=naive_end,
            orders=int(count), revenue=Decimal(revenue),
            sent_by=f"{socket.gethostname()}:{os.getpid()}",
        )  # fmt: skip
        session.add(digest)
        session.commit()
    log.info(
        "digest sent",
        extra={"fields": {"job": DIGEST, "tick": tick, "orders": int(count)}},
    )
    return digest


def count_runs(session: Session, job: str = DIGEST) -> tuple[int, int]:
    """(ticks run at least once, runs) of `job`, from the digests' table."""
    ticks, runs = session.execute(
        select(func.count(func.distinct(SalesDigest.tick)), func.count(SalesDigest.id)).where(
            SalesDigest.job == job
        )
    ).one()
    return int(ticks), int(runs)


def refresh_metrics(database: Database) -> None:
    """periodic_job_ticks and periodic_job_runs, counted from the table at a scrape."""
    with database.sessions() as session:
        ticks, runs = count_runs(session)
    metrics.PERIODIC_JOB_TICKS.labels(DIGEST).set(ticks)
    metrics.PERIODIC_JOB_RUNS.labels(DIGEST).set(runs)


class PeriodicJobs:
    """This process's scheduler: the digest every `interval_s`, if the seam lets it."""

    def __init__(
        self, database: Database, seams: FaultRuntime, redis: Redis | None, interval_s: float
    ) -> None:
        self._database = database
        self._seams = seams
        self._redis = redis
        self._interval_s = interval_s
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    def start(self) -> None:
        """Called in the running event loop (the app's lifespan)."""
        self._scheduler.add_job(
            self._digest,
            IntervalTrigger(seconds=self._interval_s, start_date=EPOCH, timezone=UTC),
            id=DIGEST,
            # One run at a time in this process, and a late timer runs the
            # tick once, not once per missed tick; later than half an interval
            # it is skipped (the next tick is close).
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self._interval_s / 2)),
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)

    async def _digest(self) -> None:
        from faults import in_process_scheduler
        from faults.in_process_scheduler import TickLockUnavailable

        tick = tick_of(datetime.now(UTC), self._interval_s)
        claim = self._seams.pick(in_process_scheduler.SCENARIO)
        try:
            mine = await claim.claim(DIGEST, tick, self._interval_s, self._redis)
        except TickLockUnavailable as exc:
            log.warning("digest tick %s skipped: %s", tick, exc)
            return
        if mine:
            await asyncio.to_thread(send_sales_digest, self._database, tick, self._interval_s)
