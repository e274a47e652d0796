"""slicer: a fragmenting link makes every byte of a result set cost time.

Network condition (both variants): Toxiproxy's `slicer` on the Postgres link
cuts the DB's answers into ~32-byte pieces, 0.5 ms apart, as a lossy or
MTU-mismatched path does. Seam: `ListQuery`, the columns the product list of
`GET /products` fetches (`seams.pick(slicer.SCENARIO)`).
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select

from faults._contract import Answer, Scenario, Symptom, Toxic
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = ["SCENARIO", "ListColumnsOnly", "ListQuery", "SelectStar"]

# Entities (faulty) or a row of columns (fixed): the route reads either.
AnyRows = Select[*tuple[Any, ...]]


class ListQueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListQuery(Protocol):
    """The seam: the SELECT of a product list page, before its filter, order and limit."""

    def query(self) -> AnyRows: ...


# --- faulty -----------------------------------------------------------------


class SelectStar:
    """Whole ORM entities, the long description included, for a list that never shows it."""

    def __init__(self, params: ListQueryParams) -> None:
        pass

    def query(self) -> AnyRows:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.models import Product

        return select(Product)


# --- fixed ------------------------------------------------------------------


class ListColumnsOnly:
    """Only the columns the list renders: fewer bytes on the wire, fewer slices."""

    def __init__(self, params: ListQueryParams) -> None:
        pass

    def query(self) -> AnyRows:
        from target_app.models import Product

        return select(
            Product.id, Product.sku, Product.name, Product.category, Product.price, Product.stock
        )


def _signature(s: Signs) -> Finding | None:
    """Large results over a link that delivers them in slices: database-bound
    requests with big answers whose queries take over 300 ms."""
    if not s.db_bound or (s.number("bytes_per_request") or 0.0) < 10_000:
        return None
    score = strength(s.number("db_query_p50_ms"), 300.0)
    return finding(
        "slicer",
        score,
        (
            Clue("median query time", s.number("db_query_p50_ms"), "< 300", "ms"),
            Clue("mean response size", s.number("bytes_per_request"), "", "B"),
        ),
    )


SCENARIO: Scenario[ListQuery, ListQueryParams] = Scenario(
    signature=_signature,
    environment="latency on the database link",
    slug="slicer",
    title="A fragmenting network: big result sets pay per byte",
    seeds=(1,),
    kind="network",
    summary=(
        "The DB link slices every answer into 32-byte pieces 0.5 ms apart. A list page that "
        "selects whole entities (descriptions included) pays for ~2.5x the bytes it shows."
    ),
    faulty=SelectStar,
    fixed=ListColumnsOnly,
    params=ListQueryParams,
    requires=("postgres", "toxiproxy"),
    toxics=(Toxic("postgres", "slicer", {"average_size": 32, "size_variation": 8, "delay": 500}),),
    workload="catalogue_pages",
    default_load={"users": 10, "duration": "30s"},
    # The SLO a shop states for a list page: p95 within 1 s, the limit of a
    # user's uninterrupted flow (Nielsen's response-time limits), on the
    # degraded link too. The faulty page misses it by the bytes it fetches.
    # The page is the workload's 150 rows (loadtests/workloads/catalogue_pages.py):
    # at 250 rows even the list columns alone took ~0.9 s of this link, an SLO no
    # query could keep; at 150 the fixed page keeps it and the faulty one does not
    # (2026-12-02: p95 0.72 s fixed, 1.55 s faulty, 10 users).
    symptom=Symptom(
        metric="p95_ms",
        op=">",
        threshold=1000.0,
        description="a list page misses its 1 s p95 over the sliced link: bytes it never shows",
    ),
    diagnosis="""\
**What you see.** Latency proportional to response *size* on the DB link, not
to row count or query plan: `db_query_duration_seconds` is high while
`pg_stat_statements` shows the same statements fast on the server, and the
Toxiproxy byte counters for `postgres` grow with every page.

**Slow API response: DB latency or code latency? (seed 1)** The endpoint
became slow with no change of code or data: the network changed. Server-Timing
(`db;dur=...` on every response) and `summary.json: db_time_share` put the time
in the DB (over 0.8 of each request, asserted by the contract test), while
`pg_stat_statements` shows the same statement fast on the server: so it is not
the query plan but the way between the app and the DB. Toxiproxy's
`toxiproxy_proxy_sent_bytes_total{proxy="postgres"}` per request names the
cause: bytes. Async would not help here: each request waits for its own bytes;
the threadpool (and async, likewise) only lets the worker serve other requests
meanwhile. What helps is fetching fewer bytes.

**Fix.** Select the columns the endpoint renders (`select(Product.id, ...)` or
`load_only(...)`), defer large columns (`deferred()`), paginate, and compress
or move bulk transfers off chatty links. Then the same network costs 2.5x less.
""",
    answers=(
        Answer(
            question=(
                "Your FastAPI endpoint suddenly becomes slow in production. "
                "How will you diagnose it?"
            ),
            answer="""\
Start from the symptom and narrow it down, one layer at a time.

1. **Which route, and since when?** In Grafana, "Lab overview", the panel
   "Latency p50 / p95 / p99 by route" shows which route, and which change
   (deploy, data, traffic, infrastructure) lines up with the jump.
2. **Where inside the request?** Each response's `Server-Timing` header
   (`db`, `upstream`, `app`), and `db_time_share` in summary.json.
3. **Which part of the database?** Time measured in the app against
   `pg_stat_statements` (time measured on the server).

In this scenario nothing in the code or data changed. The network to
PostgreSQL started to fragment: Toxiproxy's `slicer` cuts every answer into
pieces of about 32 bytes, 0.5 ms apart. `make fault=slicer compare`:

- p95 on the product list, against a requirement of p95 under 1 s:
  {faulty.p95_ms} ms for whole entities against {fixed.p95_ms} ms for the
  listed columns ({ratio.p95_ms}x). p50: {faulty.p50_ms} ms against
  {fixed.p50_ms} ms.
- `db_time_share`: {faulty.db_time_share}.
- Queries per request: {faulty.db_queries_per_request}, the same in both
  variants, so this is not N+1.
- Yet `pg_stat_statements` shows the statement fast on the server.

So the time is between the app and the database. The "Postgres link traffic
(Toxiproxy)" panel ("Lab database") shows that it scales with bytes. The fix,
`ListColumnsOnly`, selects only the columns the list renders and leaves out the
long description.
""",
        ),
        Answer(
            question="How do you check whether the issue is DB latency or code latency?",
            answer="""\
Compare three measurements of the same requests:

- **The request's own split.** `db_time_share` (app-side SQL time over request
  time) is {faulty.db_time_share} here. Code latency would show a low share and
  a high `app_cpu_ms_per_request`; here it is {faulty.app_cpu_ms_per_request}
  ms. The event-loop lag stays low ({faulty.event_loop_lag_p99_ms} ms p99).
- **A profile.** `make fault=slicer profile=py-spy load`. With code latency,
  Python frames are hot. With DB latency, the threads sit in psycopg's socket
  reads and the flame graph is mostly waiting.
- **The database's own clock.** `pg_stat_statements.mean_exec_time` is the time
  on the server. Slow there means the query or plan (see slow-query). Fast there
  but slow in the app means the round trip: the link, the pool wait, or the
  number of queries.

In this scenario all three point at the link. The app's SQL time is high, the
server's is low, and the Toxiproxy byte counters name the cause.
""",
        ),
        Answer(
            question="How do you use async to improve performance here?",
            answer="""\
Here, async would not make one request faster. Each request still waits for
its own bytes to cross the sliced link. The list route is a plain `def`, run on
the threadpool, which already lets the worker serve other requests meanwhile.
An async driver (asyncpg, or psycopg's async mode) would do the same with fewer
threads.

That helps throughput when many requests wait at once. It does not shorten a
wait that is proportional to the bytes fetched. What shortens it is fetching
fewer bytes: columns, not entities (`load_only`, `deferred()`), bounded pages,
and compression for bulk transfers.

This scenario does not compare sync and async. blocking-call measures where
async matters, and where a blocking call inside `async def` costs every
request.
""",
        ),
    ),
)
