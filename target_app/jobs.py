"""The job queue: Dramatiq on Redis, and the one job the API hands it (the snapshot ETL).

Why Dramatiq (the README says it for users too):

- *A killed worker loses nothing.* A message is acknowledged after its job
  returns, never when it is taken; every worker process heartbeats into Redis,
  and the queue's maintenance puts the unacknowledged messages of a worker
  silent for `heartbeat_timeout` back on the queue. So a SIGKILL mid-job (an
  OOM kill, a node lost) is at-least-once, and the job itself makes it
  exactly-once: the ETL commits each chunk with its checkpoint, and a second
  run resumes after it (faults/etl_in_memory.py, CheckpointedEtl).
- *Retries with backoff are built in* (its Retries middleware: exponential,
  jittered, capped), and a job whose retries are exhausted reaches a callback
  that records it as failed.
- *Threads in worker processes* suit these jobs: they are sync SQLAlchemy
  and COPY, like the app's routes; the API process enqueues with one Redis
  call.
- *In production* it runs as `dramatiq target_app.worker:setup --processes N
  --threads M` under a supervisor that restarts it (systemd, Kubernetes): the
  CLI stops every worker process when one dies, and the supervisor's restart
  is the recovery. The lab is that supervisor in a run (lab/job_workers.py).

The other candidates, as read in their code for this app: taskiq-redis 1.2.4's
stream broker reclaims a dead consumer's messages only after a read that
returned new ones (an idle queue keeps a killed job pending) and its idle
timeout must outlast the longest job; arq 0.28 pins redis-py below 6 (the app
uses 8); Celery on Redis redelivers an unacknowledged job after its visibility
timeout (1 h by default) and brings kombu and billiard; RQ moves a dead
worker's job to the failed registry instead of running it again.

Job state lives in the job's own row (`etl_jobs.status`: queued, running,
done, failed): it is what the status URL reads, what the API's
`background_jobs{state}` gauge counts, and it survives the queue's keys.
Progress and completion are also published on a Redis channel per job, which
the events URL (Server-Sent Events) streams to the client.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from faults.sync_webhook import EventRejected as EventRejectedError

if TYPE_CHECKING:
    from redis import Redis

    from target_app.settings import Settings

__all__ = [
    "HEARTBEAT_TIMEOUT_MS",
    "MAX_ATTEMPTS",
    "QUEUE",
    "WEBHOOK_QUEUE",
    "JobQueue",
    "events_channel",
    "job_queue",
]

log = logging.getLogger("target_app.jobs")

QUEUE = "etl"
WEBHOOK_QUEUE = "webhooks"
# A worker silent this long is dead and its jobs go back on the queue. Every
# worker process heartbeats on each poll of its queues (a busy one too: its
# delay-queue consumer keeps polling), at least every few seconds; Dramatiq's
# default is 60 s. 10 s keeps a killed job's wait short and is still five
# poll intervals of a live worker.
HEARTBEAT_TIMEOUT_MS = int(os.environ.get("JOBS_HEARTBEAT_TIMEOUT_MS", "10000"))
# Queue maintenance (requeueing a dead worker's jobs) runs on this share of
# the queue's commands, out of Dramatiq's 1,000,000. Its default, 1,000, is
# meant for fleets polling thousands of times a second; a few workers poll a
# few times a second, so 1 in 1,000 would leave a killed job for minutes.
# 1 in 20 costs a few extra Redis calls a second.
MAINTENANCE_CHANCE = 50_000
# Runs of one job at most, whatever ended them (an exception, a kill): a job
# that kills its worker every time (a poison message) is then failed, not
# run forever. Dramatiq counts only the exceptions; the job counts its runs.
MAX_ATTEMPTS = 5
RETRY_MIN_BACKOFF_MS = 1_000
RETRY_MAX_BACKOFF_MS = 30_000
# The job's budget: far above a few seconds' work, far below "stuck forever".
TIME_LIMIT_MS = 10 * 60_000


def events_channel(job_id: int) -> str:
    """The Redis channel a job's progress and completion are published on."""
    return f"etl-jobs:{job_id}"


def publish(redis: Redis, job_id: int, event: dict[str, Any]) -> None:
    """Tell whoever follows the job (GET /etl/jobs/{id}/events) what just happened."""
    try:
        redis.publish(events_channel(job_id), json.dumps({"job_id": job_id, **event}))
    except Exception:  # the job's row holds the truth; a lost event costs a poll
        log.warning("could not publish an event of job %s", job_id, exc_info=True)


def _broker(redis_url: str) -> RedisBroker:
    # Dramatiq's broker constructors are not annotated (its package is typed otherwise).
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    broker.add_middleware(CurrentMessage())
    return broker


class JobQueue:
    """What the API holds: the broker and the jobs' actors, to enqueue with."""

    def __init__(self, redis_url: str) -> None:
        self.broker = _broker(redis_url)
        self.snapshot = _declare(self.broker)
        self.webhook = _declare_webhook(self.broker)

    def warm_up(self) -> None:
        """Open the connection and load the broker's scripts. Dramatiq runs every
        queue command as a Lua script and, on its first one, probes Redis's Lua
        stack depth (another script): together some 50 ms the first submission
        would otherwise wait. Asking the queue's size runs both."""
        self.broker.do_qsize(QUEUE)

    def enqueue_snapshot(self, job_id: int, limit: int | None) -> str:
        """Queue the job's run; the message id (Dramatiq's) is returned for the logs."""
        message = self.snapshot.send(job_id, limit)
        return message.message_id

    def enqueue_webhook(self, event_id: str) -> str:
        """Queue a received webhook event for the consumer (faults/sync_webhook.py)."""
        return self.webhook.send(event_id).message_id


@lru_cache(maxsize=4)
def job_queue(redis_url: str) -> JobQueue:
    """One queue per Redis address and process (the broker holds a connection pool)."""
    return JobQueue(redis_url)


def _declare(broker: RedisBroker) -> dramatiq.Actor[[int, int | None], None]:
    """The job's actor on `broker`: in the API to send, in the worker to run."""

    def snapshot_products(job_id: int, limit: int | None) -> None:
        from target_app import worker  # the worker's process state: only where it runs

        worker.run_snapshot(job_id, limit)

    def snapshot_failed(message: dict[str, Any], exception: dict[str, Any]) -> None:
        from target_app import worker

        worker.fail_snapshot(int(message["args"][0]), str(exception.get("message", "")))

    dramatiq.Actor(
        snapshot_failed, broker=broker, actor_name="snapshot_failed", queue_name=QUEUE,
        priority=0, options={"max_retries": 3},
    )  # fmt: skip
    return dramatiq.Actor(
        snapshot_products, broker=broker, actor_name="snapshot_products", queue_name=QUEUE,
        priority=0,
        options={
            "max_retries": MAX_ATTEMPTS - 1, "min_backoff": RETRY_MIN_BACKOFF_MS,
            "max_backoff": RETRY_MAX_BACKOFF_MS, "time_limit": TIME_LIMIT_MS,
            "on_retry_exhausted": "snapshot_failed",
        },
    )  # fmt: skip


def _declare_webhook(broker: RedisBroker) -> dramatiq.Actor[[str], None]:
    """The webhook consumer's actor: apply one received event (its own queue, so a
    burst of events does not wait behind a snapshot job, nor the other way round)."""

    def apply_payment_event(event_id: str) -> None:
        from target_app import worker

        worker.apply_webhook(event_id)

    return dramatiq.Actor(
        apply_payment_event, broker=broker, actor_name="apply_payment_event",
        queue_name=WEBHOOK_QUEUE, priority=0,
        # The provider's API down: retried with backoff for a few minutes, then the
        # event stays `received` in the inbox, where a person (or a replay) finds it.
        options={"max_retries": 8, "min_backoff": RETRY_MIN_BACKOFF_MS,
                 "max_backoff": RETRY_MAX_BACKOFF_MS, "time_limit": 60_000,
                 "throws": (EventRejectedError,)},
    )  # fmt: skip


def worker_broker(settings: Settings) -> RedisBroker:
    """The broker of a worker process, made global for Dramatiq's CLI."""
    if not settings.redis_url:
        raise RuntimeError(
            "the job worker needs Redis: set REDIS_URL (the lab sets it when `make up` runs)"
        )
    queue = job_queue(settings.redis_url)
    dramatiq.set_broker(queue.broker)
    return queue.broker
