"""etl-in-memory (seed 34): an ETL job that loads the whole table into memory
and, when it fails half-way, starts again from zero.

Seam: `target_app.etl.Etl`, one attempt of the job that
`POST /etl/product-snapshots` runs (`seams.pick(etl_in_memory.SCENARIO)`, handed
to `target_app.etl.run_job`). The job runner around it is the same in both
variants: it creates the job, injects a failure half-way through the first
attempt (as a killed worker or a dropped connection would), retries once as a
job supervisor does, and counts what the target holds at the end.

Both variants read the same columns and write with the same COPY
(`target_app.etl.copy_snapshots`); they differ in how they read the source and
in whether the progress is recorded with the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from faults._contract import Answer, Scenario, Symptom, Variant
from faults._signs import Clue, Finding, Signs, finding

if TYPE_CHECKING:
    from target_app.etl import Etl, EtlAttempt, FailurePoint
    from target_app.models import EtlJob

__all__ = ["SCENARIO", "CheckpointedEtl", "InMemoryEtl"]


class EtlParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- faulty -----------------------------------------------------------------


class InMemoryEtl:
    """Extract the whole scope with `.all()`, transform it into a second list, then
    load it in batches, committing each. Memory grows with the table; nothing
    records how far the load got, so a retry starts again from the first row
    and the rows committed before the failure are written a second time."""

    BATCH = 10_000

    def __init__(self, params: EtlParams) -> None:
        pass

    def run(
        self, session: Session, job: EtlJob, attempt: EtlAttempt, failure: FailurePoint | None
    ) -> None:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.etl import SOURCE_COLUMNS, copy_snapshots, count_rows, transform
        from target_app.models import Product

        rows = session.execute(
            select(*SOURCE_COLUMNS).where(Product.id <= job.until_product_id).order_by(Product.id)
        ).all()
        attempt.extracted = len(rows)
        count_rows("extracted", len(rows))
        snapshots = [transform(row, job.id) for row in rows]
        for start in range(0, len(snapshots), self.BATCH):
            batch = snapshots[start : start + self.BATCH]
            copy_snapshots(session, batch)
            if failure is not None:
                failure.check(attempt.loaded + len(batch))
            session.commit()
            attempt.loaded += len(batch)
            count_rows("loaded", len(batch))


# --- fixed ------------------------------------------------------------------


class CheckpointedEtl:
    """Read the scope in chunks by primary key (`WHERE id > :checkpoint ORDER BY id
    LIMIT :n`): memory is bounded by one chunk. Each chunk's rows and the new
    checkpoint are committed in the same transaction, so after a failure the
    retry resumes after the last committed chunk and no row is written twice."""

    CHUNK = 10_000

    def __init__(self, params: EtlParams) -> None:
        pass

    def run(
        self, session: Session, job: EtlJob, attempt: EtlAttempt, failure: FailurePoint | None
    ) -> None:
        from target_app.etl import SOURCE_COLUMNS, copy_snapshots, count_rows, transform
        from target_app.models import EtlJob, Product

        last = attempt.resumed_from = _checkpoint(session, job.id)
        while rows := session.execute(
            select(*SOURCE_COLUMNS)
            .where(Product.id > last, Product.id <= job.until_product_id)
            .order_by(Product.id)
            .limit(self.CHUNK)
        ).all():
            attempt.extracted += len(rows)
            count_rows("extracted", len(rows))
            copy_snapshots(session, (transform(row, job.id) for row in rows))
            session.execute(
                update(EtlJob).where(EtlJob.id == job.id).values(last_product_id=rows[-1][0])
            )
            if failure is not None:
                failure.check(attempt.loaded + len(rows))
            session.commit()  # the chunk and its checkpoint, or neither
            attempt.loaded += len(rows)
            count_rows("loaded", len(rows))
            last = _checkpoint(session, job.id)
        session.commit()


def _checkpoint(session: Session, job_id: int) -> int:
    """The job's checkpoint, locked until the transaction ends: a second runner of
    the same job waits here instead of loading the same chunk next to this one."""
    from target_app.models import EtlJob

    last = session.scalar(
        select(EtlJob.last_product_id).where(EtlJob.id == job_id).with_for_update()
    )
    return last or 0


def prepare(variant: Variant, database_url: str) -> None:
    """Bring the schema to head (the ETL tables are migration 0003) and start each
    variant from empty ETL tables."""
    from target_app.migrate import upgrade_and_empty

    upgrade_and_empty(database_url, "product_snapshots", "etl_jobs")


def _signature(s: Signs) -> Finding | None:
    """A batch that reads its whole input before writing: the peak RSS rises
    (Signs.peak_memory) in requests that query the database."""
    if (s.number("bytes_per_request") or 0.0) >= 1e6 or (
        s.number("db_queries_per_request") or 0.0
    ) < 0.5:
        return None
    score = s.peak_memory()
    return finding(
        "etl-in-memory",
        score,
        (
            Clue("peak RSS rise under load", s.number("peak_rss_growth_mb"), "< 100", "MB"),
            Clue("DB queries per request", s.number("db_queries_per_request")),
        ),
        confirm="profile=memray",
    )


SCENARIO: Scenario[Etl, EtlParams] = Scenario(
    signature=_signature,
    slug="etl-in-memory",
    title="ETL job that loads the whole table into memory and restarts from zero on failure",
    seeds=(34,),
    kind="fault",
    summary=(
        "An API-triggered ETL job reads a million products with `.all()`, transforms them "
        "into a second list and loads them; a failure half-way makes its retry start from "
        "zero and write the first half twice. Streamed in keyset chunks, each committed "
        "with its checkpoint, it holds one chunk in memory and resumes where it stopped."
    ),
    faulty=InMemoryEtl,
    fixed=CheckpointedEtl,
    params=EtlParams,
    requires=("postgres",),
    workload="etl",
    prepare=prepare,
    default_load={"users": 1, "duration": "30s"},
    symptom=Symptom(
        metric="peak_rss_growth_mb",
        op=">",
        threshold=100.0,
        description="the app's peak RSS rises with the size of the table the job reads",
    ),
    answers=(
        Answer(
            "API triggers an ETL job. How do you handle large data?",
            """\
Never hold the data set: bound memory by a chunk, not by the table. The faulty job reads
a million products with `.all()` and transforms them into a second list: its peak RSS
grows by {faulty.peak_rss_growth_mb} MB; the fix streams keyset chunks
(`WHERE id > :last ORDER BY id LIMIT :n`), transforms each with a generator and writes it
with its checkpoint: {fixed.peak_rss_growth_mb} MB (requirement: under 100 MB, whatever the
table's size). Run the job off the request path in production (202, a job id, a worker);
the lab runs it in the request so that Locust can time it. Reproduce with
`make fault=etl-in-memory compare`, and `lab run etl-in-memory --profile memray` to see
`fetchall` and `transform` at the high-water mark.""",
        ),
        Answer(
            "Why use streaming?",
            """\
Because memory must not grow with the business. A materialised job's footprint is the
table's size (here {faulty.peak_rss_growth_mb} MB of peak growth for a million rows), so one
day the worker is OOM-killed and takes the requests it served with it. Streamed (a
server-side cursor with `yield_per`, or keyset chunks when the job must resume), the first
rows are loaded while the rest are read, and the footprint is one chunk
({fixed.peak_rss_growth_mb} MB).""",
        ),
        Answer(
            "How to handle partial failures?",
            """\
Assume the job dies half-way (the lab injects a failure at 50% of the first attempt) and
make the retry safe: commit each chunk's rows and its checkpoint in one transaction, so the
retry resumes after the last committed chunk, never lost, never twice; add a unique key and
`ON CONFLICT DO NOTHING` as the second line; retry with backoff under a row lock of the
job. Measured from the target table: the faulty retry starts from zero and leaves
{faulty.etl_duplicate_rows} duplicate rows, the fixed one {fixed.etl_duplicate_rows}
(rows read {faulty.etl_rows_extracted} against {fixed.etl_rows_extracted}).""",
        ),
    ),
    diagnosis="""\
**What you see.** While a job runs, the app's RSS jumps by about a gigabyte
and stays near its high-water mark (summary: `peak_rss_growth_mb`, the
kernel's VmHWM of the app process; *RSS* plot). Nothing leaks: the next job
does not go higher, it needs the same gigabyte again. Each job answers 200,
yet the target holds 1.5 rows per product: the job's own check
(`SELECT count(*) - count(DISTINCT product_id) FROM product_snapshots WHERE
job_id = ...`) counts them, exported as `etl_duplicate_rows_total`, next to
`etl_rows_total{outcome="extracted|loaded"}` and
`etl_job_attempts_total{outcome="failed|completed"}` and `etl_jobs_total` (summary:
`etl_duplicate_rows`, `etl_rows_extracted`, `etl_rows_loaded`,
`etl_jobs_completed`). The workload counts a job with duplicates as failed.

**Find it.** `make fault=etl-in-memory load` (or `lab run etl-in-memory`)
shows the peak; `lab run etl-in-memory --profile memray` names what is alive
at the high-water mark (the report's *allocation sites* table, and
`profile/memray-flamegraph.html`): psycopg's `fetchall` (the rows, about
470 MB), `transform` (the second list, about 320 MB) and SQLAlchemy's Row
objects (about 100 MB), all under `InMemoryEtl.run`. The attempt counters
and the job's answer (`attempts[].resumed_from`, `attempts[].extracted`)
show the retry reading from the first product again.

**How do you handle large data; why streaming (seed 34)?** Never
materialise the data set: memory must be bounded by a chunk, not by the
table, or the job's footprint grows with the business until the worker is
OOM-killed (and takes the requests it was serving with it). Read in chunks:
a server-side cursor (`execution_options(yield_per=10_000)` /
`stream_results=True`) for a single pass, or keyset pagination
(`WHERE id > :last ORDER BY id LIMIT :n`, an index range scan: never OFFSET)
when the job must be resumable, as here. Transform chunk by chunk with
generators, select only the columns you use (not the 2 kB description), and
write each chunk with COPY (or executemany), not row by row. Run the job
off the request path: the API answers 202 with a job id and a status URL, a
worker (arq, Celery, RQ) runs it; the lab runs it in the request so that
Locust can time it.

**How do you handle partial failures?** Assume the job dies half-way (a
deploy, an OOM kill, a dropped connection; the lab injects one at 50% of the
first attempt) and make the retry safe:
1. *Checkpoint in the same transaction as the data.* Each chunk's rows and
   `etl_jobs.last_product_id` commit together, so the checkpoint never runs
   ahead of the data (lost rows) nor behind it (duplicates). A checkpoint kept
   in Redis, a file or a separate transaction has exactly those two failure
   modes. The retry reads the checkpoint and starts after it.
2. *Idempotent writes* as the second line: a unique key on (job, product) and
   `INSERT ... ON CONFLICT DO NOTHING` (COPY into a staging table first), or a
   job-scoped target swapped in at the end. The lab's target deliberately has
   no unique key, so that the faulty variant's duplicates are counted instead
   of raising.
3. *Bounded retries with backoff*, at the job level, by the supervisor; lock
   the job's checkpoint row (`SELECT ... FOR UPDATE`) so that a second runner
   of the same job waits instead of loading the same chunk.
4. Verify at the end (row count, distinct keys) and record the outcome.

**Measured.** The page's "Measured" block and the answers above carry the
numbers of the lab's latest run of both variants (`make fault=etl-in-memory compare`).
""",
)
