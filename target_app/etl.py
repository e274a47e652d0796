"""The product-snapshots ETL job: its runner, its bookkeeping, and what every attempt shares.

`POST /etl/product-snapshots` runs a job with `run_job`, handing it one
implementation of `Etl`, the etl-in-memory seam (faults/etl_in_memory.py). The
runner is the same whichever it gets: it creates the job, injects a failure
half-way through the first attempt (as a killed worker or a dropped connection
would), retries once as a job supervisor does, and counts what the target holds
at the end. Both implementations read the same columns, transform a row the same
way and write with the same COPY: those live here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from target_app import metrics
from target_app.models import EtlJob, Product, ProductSnapshot

__all__ = [
    "SOURCE_COLUMNS",
    "AttemptsExhausted",
    "Etl",
    "EtlAttempt",
    "FailurePoint",
    "InjectedFailure",
    "JobReport",
    "NeedsPostgres",
    "copy_snapshots",
    "count_rows",
    "fail_job",
    "job_states",
    "new_job",
    "queue_job",
    "require_postgres",
    "run_job",
    "run_queued",
    "transform",
]

JOB_NAME = "product-snapshots"
MAX_ATTEMPTS = 2  # the first one, and one retry
TAX = Decimal("1.20")
CENT = Decimal("0.01")
# What the job reads: never the 2 kB description nobody downstream needs.
SOURCE_COLUMNS = (
    Product.id, Product.sku, Product.name, Product.category, Product.price, Product.stock,
)  # fmt: skip
SNAPSHOT_COLUMNS = ("job_id", "product_id", "sku", "name", "category", "price_with_tax", "in_stock")


class InjectedFailure(RuntimeError):
    """The lab's stand-in for a worker killed, or a connection dropped, mid-job."""


class NeedsPostgres(RuntimeError):
    """The job writes with PostgreSQL's COPY, and the app's database is another one."""


@dataclass
class FailurePoint:
    """Raise once, the first time an attempt has written more than `after_rows` rows,
    before they are committed: what was committed stays, the batch in flight is lost."""

    after_rows: int
    fired: bool = False

    def check(self, written: int) -> None:
        if not self.fired and written > self.after_rows:
            self.fired = True
            raise InjectedFailure(f"injected failure after {written:,} rows of this attempt")


@dataclass
class EtlAttempt:
    """What one attempt did: where it started from, what it read and committed."""

    number: int
    resumed_from: int = 0  # the checkpoint it started after (a product id)
    extracted: int = 0
    loaded: int = 0  # committed rows
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.number, "resumed_from": self.resumed_from,
            "extracted": self.extracted, "loaded": self.loaded, "error": self.error,
            "seconds": round(self.seconds, 3),
        }  # fmt: skip


class Etl(Protocol):
    """The etl-in-memory seam: one attempt of the job, from where it starts to its commit."""

    def run(
        self, session: Session, job: EtlJob, attempt: EtlAttempt, failure: FailurePoint | None
    ) -> None: ...


def transform(row: Sequence[Any], job_id: int) -> tuple[Any, ...]:
    """A product row as its snapshot row: normalised name, price with tax, in stock."""
    product_id, sku, name, category, price, stock = row
    price_with_tax = (price * TAX).quantize(CENT)
    return (job_id, product_id, sku, " ".join(name.split()).title(), category.lower(),
            price_with_tax, stock > 0)  # fmt: skip


def copy_snapshots(session: Session, rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY the rows into product_snapshots, inside the session's transaction."""
    raw: Any = session.connection().connection.dbapi_connection  # psycopg's own connection
    sql = f"COPY product_snapshots ({', '.join(SNAPSHOT_COLUMNS)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def count_rows(outcome: str, n: int) -> None:
    if n:
        metrics.ETL_ROWS.labels(outcome).inc(n)


@dataclass
class JobReport:
    job_id: int
    rows_expected: int
    attempts: list[EtlAttempt] = field(default_factory=list)
    rows_in_target: int = 0
    distinct_products: int = 0
    seconds: float = 0.0

    @property
    def duplicate_rows(self) -> int:
        return self.rows_in_target - self.distinct_products

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "rows_expected": self.rows_expected,
            "rows_in_target": self.rows_in_target, "distinct_products": self.distinct_products,
            "duplicate_rows": self.duplicate_rows,
            "attempts": [a.as_dict() for a in self.attempts], "seconds": round(self.seconds, 3),
        }  # fmt: skip


def _scope(session: Session, limit: int | None) -> tuple[int, int]:
    """The job's scope: the last product id it covers, and how many products that is."""
    ids = select(Product.id).order_by(Product.id)
    if limit is not None:
        ids = ids.limit(limit)
    scope = ids.subquery()
    until, expected = session.execute(select(func.max(scope.c.id), func.count())).one()
    return until or 0, expected


def new_job(session: Session, limit: int | None) -> EtlJob:
    """The job row, with its scope fixed now: every attempt reads the same products."""
    until, expected = _scope(session, limit)
    return _insert_job(session, status="running", until_product_id=until, rows_expected=expected)


def queue_job(session: Session) -> EtlJob:
    """The row of a job a worker will run (POST /etl/jobs). Its scope is fixed by
    its first run (`run_queued`): counting 100,000 products costs 16 ms, which the
    request that queues the job must not pay."""
    return _insert_job(session, status="queued", until_product_id=0, rows_expected=0)


def _insert_job(session: Session, **values: Any) -> EtlJob:
    job_id = session.scalar(insert(EtlJob).values(name=JOB_NAME, **values).returning(EtlJob.id))
    session.commit()
    job = session.get(EtlJob, job_id)
    assert job is not None
    return job


def run_job(
    session: Session, etl: Etl, limit: int | None = None, fail_at: float | None = None
) -> JobReport:
    """Run one ETL job to the end: a failure injected at `fail_at` (a fraction of the
    rows) in the first attempt, one retry, then the target's rows counted."""
    require_postgres(session)
    started = time.perf_counter()
    job = new_job(session, limit)
    report = JobReport(job.id, job.rows_expected)
    failure = FailurePoint(max(int(job.rows_expected * fail_at), 1)) if fail_at else None
    for number in range(1, MAX_ATTEMPTS + 1):
        attempt = EtlAttempt(number)
        report.attempts.append(attempt)
        session.execute(update(EtlJob).where(EtlJob.id == job.id).values(attempts=number))
        session.commit()
        t0 = time.perf_counter()
        try:
            etl.run(session, job, attempt, failure if number == 1 else None)
        except InjectedFailure as exc:
            session.rollback()
            attempt.error = str(exc)
            metrics.ETL_ATTEMPTS.labels("failed").inc()
            if number == MAX_ATTEMPTS:
                raise
            continue
        finally:
            attempt.seconds = time.perf_counter() - t0
        metrics.ETL_ATTEMPTS.labels("completed").inc()
        break
    _finish(session, report)
    report.seconds = time.perf_counter() - started
    return report


def require_postgres(session: Session) -> None:
    """Refuse before any job row is written: no job that could never run."""
    backend = session.get_bind().dialect.name
    if backend != "postgresql":
        raise NeedsPostgres(
            f"the ETL job writes with PostgreSQL's COPY, and DATABASE_URL is {backend}: start "
            "PostgreSQL with `make up`, then `lab run etl-in-memory` runs the job against it"
        )


def _finish(session: Session, report: JobReport) -> None:
    """Count what the target holds for the job, and mark it done."""
    total, distinct = session.execute(
        select(func.count(), func.count(ProductSnapshot.product_id.distinct())).where(
            ProductSnapshot.job_id == report.job_id
        )
    ).one()
    report.rows_in_target, report.distinct_products = total, distinct
    session.execute(
        update(EtlJob)
        .where(EtlJob.id == report.job_id)
        .values(status="done", finished_at=func.now())
    )
    session.commit()
    # Duplicates first, then the job: a scrape between the two lines sees a job's
    # duplicates without the job, never the job without its duplicates.
    if report.duplicate_rows:
        metrics.ETL_DUPLICATE_ROWS.inc(report.duplicate_rows)
    metrics.ETL_JOBS.inc()


# --- one run of a queued job (target_app/worker.py) ----------------------------------

TERMINAL = ("done", "failed")


class AttemptsExhausted(RuntimeError):
    """The job was started its most times (e.g. it kills its worker each time)."""


def run_queued(
    session: Session, etl: Etl, job_id: int, limit: int | None, max_attempts: int
) -> JobReport | None:
    """Run a queued job once more: None when there is nothing to do.

    A message may come again after its job finished (a worker killed between
    the job's commit and the queue's acknowledgement): a finished job is not
    run twice. A job started `max_attempts` times is failed instead: the queue
    counts exceptions, not kills, so the job counts its own starts.
    """
    started = time.perf_counter()
    job = session.scalar(select(EtlJob).where(EtlJob.id == job_id).with_for_update())
    if job is None or job.status in TERMINAL:
        session.rollback()
        return None
    if job.attempts >= max_attempts:
        fail_job(session, job_id)
        raise AttemptsExhausted(f"job {job_id} was started {job.attempts} times")
    if job.attempts == 0:
        # The first run fixes the scope, in the same commit as its start: every
        # later run (after a kill) reads the same products.
        job.until_product_id, job.rows_expected = _scope(session, limit)
    job.attempts += 1
    job.status = "running"
    session.commit()
    report = JobReport(job.id, job.rows_expected)
    attempt = EtlAttempt(job.attempts)
    report.attempts.append(attempt)
    try:
        etl.run(session, job, attempt, None)
    except BaseException:
        session.rollback()
        metrics.ETL_ATTEMPTS.labels("failed").inc()
        raise
    finally:
        attempt.seconds = time.perf_counter() - started
    metrics.ETL_ATTEMPTS.labels("completed").inc()
    _finish(session, report)
    report.seconds = time.perf_counter() - started
    return report


def fail_job(session: Session, job_id: int) -> None:
    """Mark a job failed (its retries are exhausted), unless it finished meanwhile."""
    session.execute(
        update(EtlJob)
        .where(EtlJob.id == job_id, EtlJob.status.not_in(TERMINAL))
        .values(status="failed", finished_at=func.now())
    )
    session.commit()


def job_states(session: Session) -> dict[str, int]:
    """Jobs by status: what `background_jobs{state}` shows."""
    rows = session.execute(select(EtlJob.status, func.count()).group_by(EtlJob.status)).all()
    return {status: count for status, count in rows}
