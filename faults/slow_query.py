"""slow-query (seeds 1, 10): a lookup on an unindexed column of a large table.

The code is the same in both variants; the schema is not. Faulty: the
database at revision 0001, where `products.name` has no index, so every
lookup scans the table. Fixed: revision 0002
(target_app/migrations/versions/0002_products_name_index.py) adds the index,
shipped as an Alembic migration with its downgrade, both CONCURRENTLY on
PostgreSQL so that writes to the table go on while the index builds
(tests/scenarios/test_slow_query.py times them). The run brings the
database to the variant's revision before the app starts (`prepare`).

Seam: `ProductSearch`, the name lookup of `GET /products/search`
(`seams.pick(slow_query.SCENARIO)`).
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from faults._contract import Answer, Scenario, Symptom, Variant
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = ["SCENARIO", "NameLookup", "ProductSearch", "WithIndex", "WithoutIndex"]


class LookupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProductSearch(Protocol):
    """The seam: the products whose name is exactly `name`, as the answer lists them."""

    def find(self, session: Session, name: str) -> list[dict[str, Any]]: ...


class NameLookup:
    revision: str  # the schema revision the variant stands for

    def __init__(self, params: LookupParams) -> None:
        pass

    def find(self, session: Session, name: str) -> list[dict[str, Any]]:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.models import Product

        rows = session.execute(
            select(Product.id, Product.sku, Product.name, Product.price).where(Product.name == name)
        )
        return [{"id": i, "sku": s, "name": n, "price": str(p)} for i, s, n, p in rows]


# --- faulty -----------------------------------------------------------------


class WithoutIndex(NameLookup):
    """Schema at 0001: `WHERE name = :name` is a sequential scan of every product."""

    revision = "0001"


# --- fixed ------------------------------------------------------------------


class WithIndex(NameLookup):
    """Schema at 0002 (`ix_products_name`): an index scan, a few pages read."""

    revision = "0002"


def prepare(variant: Variant, database_url: str) -> None:
    """Migrate the database to the variant's schema revision (upgrade or downgrade)."""
    from alembic import command

    from target_app.migrate import alembic_config

    config = alembic_config(database_url)
    # Both are no-ops when the database is already there. The fixed variant goes
    # to head, not to 0002: later revisions (other scenarios' tables) build on it.
    if variant == "faulty":
        command.downgrade(config, WithoutIndex.revision)
    else:
        command.upgrade(config, "head")


def _signature(s: Signs) -> Finding | None:
    """One query that is slow in itself: requests wait on the database
    (Signs.db_bound) for one query each, which takes over 300 ms."""
    q = s.number("db_queries_per_request") or 0.0
    if not s.db_bound or q >= 1.5:
        return None
    score = strength(s.number("db_query_p50_ms"), 300.0)
    return finding(
        "slow-query",
        score,
        (
            Clue("median query time", s.number("db_query_p50_ms"), "< 300", "ms"),
            Clue("share of request time in the DB", s.number("db_time_share"), "< 0.8"),
        ),
        confirm="EXPLAIN (ANALYZE, BUFFERS) the query",
    )


SCENARIO: Scenario[ProductSearch, LookupParams] = Scenario(
    signature=_signature,
    slug="slow-query",
    title="Slow endpoint from a query on an unindexed column (fix: an Alembic migration)",
    seeds=(1, 10),
    kind="fault",
    summary=(
        "Looking products up by name scans the whole table (hundreds of thousands of rows) "
        "on every request. Migration 0002 adds the index: the same query reads a few pages."
    ),
    faulty=WithoutIndex,
    fixed=WithIndex,
    params=LookupParams,
    requires=("postgres",),
    workload="product_search",
    prepare=prepare,
    default_load={"users": 10, "duration": "30s"},
    symptom=Symptom(
        metric="db_time_share",
        op=">",
        threshold=0.8,
        description="one statement per request, and it is where the request's time goes",
    ),
    diagnosis="""\
**What you see.** DB time share above 80% of request time with one query per
request (`db_queries_per_request` = 1): not N+1, not latency (no toxic), the
statement itself is slow. `pg_stat_statements` (loaded in the lab's Postgres)
ranks it first by total time:

    psql -h 127.0.0.1 -p 15432 -U lab shop -c "SELECT calls, mean_exec_time, query
      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5"

and `EXPLAIN ANALYZE SELECT ... WHERE name = '...'` shows `Seq Scan on products`
(faulty) vs `Index Scan using ix_products_name` (fixed).

**Optimise from the API side (seed 10).** Add the index the query needs
(migration 0002, reversible: `alembic downgrade 0001`). On a live table build
it `CONCURRENTLY` (outside a transaction: Alembic's `autocommit_block()`): a
plain `CREATE INDEX` holds a SHARE lock for the whole build, and every write
to the table waits that long (seconds on a million rows); select only the
columns you return; cache hot lookups (Redis, see no-cache); paginate; for
"10 s" queries, move them off the request path (a job) and serve the result.
**When to denormalise?** When a join or aggregate is read far more often than
its inputs change and an index cannot help (counts, totals).
""",
    answers=(
        Answer(
            question=(
                "Your FastAPI endpoint suddenly becomes slow in production. "
                "How will you diagnose it?"
            ),
            answer="""\
Narrow it down one layer at a time: which route, which part of the request,
which statement.

1. **Which route, since when.** In Grafana, "Lab overview", the panel
   "Latency p50 / p95 / p99 by route" names `/products/search`.
2. **Which part of the request.** The `Server-Timing` header and
   `db_time_share` put the time in the database: {faulty.db_time_share} of it,
   against {fixed.db_time_share} with the index.
3. **Which statement.** Queries per request stay at
   {faulty.db_queries_per_request}, so this is not N+1 and not a chatty link.
   One statement is slow, and `pg_stat_statements` ranks it first by total
   time. `EXPLAIN ANALYZE` shows `Seq Scan on products`.

`make fault=slow-query compare` runs the same code on the schema without and
with migration 0002. p95 is {faulty.p95_ms} ms against {fixed.p95_ms} ms
({ratio.p95_ms}x), and throughput {faulty.rps} against {fixed.rps} req/s.

"Suddenly" usually means the data grew past the point where a scan was cheap,
or a plan changed. Neither shows in the code diff, so compare the plan and the
table's size, not just the deploy.
""",
        ),
        Answer(
            question="How do you check whether the issue is DB latency or code latency?",
            answer="""\
- **Share of the time:** `db_time_share` (SQL time measured by the app over
  request time) is {faulty.db_time_share}. Code latency would show a low share,
  high `app_cpu_ms_per_request` and py-spy flame graphs full of Python frames.
- **A profile:** `make fault=slow-query profile=py-spy load` shows the threads
  waiting in psycopg's `execute`.
- **The server's side:** `pg_stat_statements.mean_exec_time` high on the server
  means the statement itself: its plan, here a sequential scan of a million
  rows. A fast statement on the server that is slow in the app would mean the
  link (see slicer, db-latency) or the pool wait (see pool-exhaustion).
- **Rule out the neighbours:** `db_queries_per_request` at
  {faulty.db_queries_per_request} rules out N+1. There is no toxic on the link
  in this scenario.
""",
        ),
        Answer(
            question="How do you use async to improve performance here?",
            answer="""\
Async would not help this query: it is the database's CPU and I/O scanning a
million rows, and it takes as long from an async driver. What async, or the
threadpool, does is let the worker serve other requests while one waits.

With a sequential scan, more concurrent waiting just means more parallel scans
competing for the same database. The index removes the work instead:
{ratio.p95_ms}x on p95 here.

Where async does help: many independent waits per request, such as several
upstream calls or independent queries, can overlap with `asyncio.gather`. This
scenario does not measure that. blocking-call measures what a blocking call in
`async def` costs, and db-latency what fewer round trips save. For a query
that stays slow, put `statement_timeout` on the route's statements so that
requests fail fast instead of piling up.
""",
        ),
        Answer(
            question="A DB query takes 10 seconds. How will you optimize it from API side?",
            answer="""\
- **Make it cheap.** Read its plan (`EXPLAIN (ANALYZE, BUFFERS)`) and give it
  the index it needs. Here that is migration 0002, built `CONCURRENTLY` in an
  autocommit block (target_app/online_ddl.py) so that writes continue during
  the build. `test_the_index_migration_does_not_block_writes` proves it on a
  million rows: no write waits for as much as half the build. A plain
  `CREATE INDEX` makes every write wait for the whole build. The result here:
  p95 {faulty.p95_ms} ms against {fixed.p95_ms} ms.
- **Ask for less.** Select only the columns you return (this lookup does),
  bound the rows (pagination, see offset-pagination), and push aggregates into
  SQL (see orm-overhead).
- **Bound it.** Set `statement_timeout` for the route, so that a query that
  cannot finish in the API's budget fails fast instead of holding a connection
  and a worker.
- **Move it off the request** if it stays slow. Precompute it (a materialized
  view refreshed `CONCURRENTLY`, or a job) and serve the result, or run it as a
  job and answer 202 with a status URL.
- **Cache** the results of hot lookups (next answer).
""",
        ),
        Answer(
            question="How do you cache queries?",
            answer="""\
Cache results, not queries.

- **Key and TTL:** cache-aside in Redis, keyed by the normalised inputs (here
  the name looked up), with a TTL that matches how stale the answer may be.
- **Invalidation:** delete or overwrite the key where the data changes.
- **Stampedes:** use a lock, so that one request recomputes a missing value
  while the others wait for it.
- **Failure:** a per-call timeout and a fallback, so that a slow cache cannot
  be slower than the database (redis-timeout).

A cache is not a substitute for the index here. An exact-name lookup has a
long tail of distinct names, so most look-ups would miss and still pay for the
scan. This scenario measures the index, not a cache. no-cache measures cache
hits, the lock and what they save.
""",
        ),
        Answer(
            question="When to denormalize?",
            answer="""\
Denormalise when a join or an aggregate is read far more often than its inputs
change, and no index can make it cheap. Typical cases are counts, totals,
"latest N" and a product's rating.

Keep the copy correct in one of these ways:

- update it in the same transaction as its source;
- update it with a trigger;
- keep it in a materialized view that is refreshed on a schedule and may be
  stale.

Every copy is a write cost and a consistency risk, so measure first.

It is not the answer here. An equality lookup on one column needs an index,
and the index brings p95 from {faulty.p95_ms} ms to {fixed.p95_ms} ms. The lab
does not measure denormalisation.
""",
        ),
    ),
)
