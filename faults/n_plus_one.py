"""n-plus-one (seeds 10, 49): lazy loading in a loop, one query per row and per relation.

Seam: `FeedLoader`, how the order feed of `GET /orders` loads its orders
(`seams.pick(n_plus_one.SCENARIO)`). Both variants return the same JSON; only the number of
statements differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from target_app.models import Order

__all__ = ["SCENARIO", "EagerLoading", "FeedLoader", "LazyLoading"]


class FeedLoader(Protocol):
    """The seam: the page of orders the feed serializes, with whatever it loaded up front."""

    def orders(self, session: Session, before_id: int, limit: int) -> list[Order]: ...


class FeedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- faulty -----------------------------------------------------------------


class LazyLoading:
    """Load the orders, then let each `order.items`, `item.product` and `order.user`
    access fire its own SELECT as the serializer walks the objects."""

    def __init__(self, params: FeedParams) -> None:
        pass

    def orders(self, session: Session, before_id: int, limit: int) -> list[Order]:
        from target_app.models import Order  # here: listing the catalogue never imports the app

        query = select(Order).where(Order.id < before_id).order_by(Order.id.desc()).limit(limit)
        return list(session.scalars(query))


# --- fixed ------------------------------------------------------------------


class EagerLoading:
    """Say what the response needs up front: the user joined, the items and their
    products each loaded in one `IN (...)` query. Three statements, whatever the page size."""

    def __init__(self, params: FeedParams) -> None:
        pass

    def orders(self, session: Session, before_id: int, limit: int) -> list[Order]:
        from target_app.models import Order, OrderItem

        query = (
            select(Order)
            .where(Order.id < before_id)
            .order_by(Order.id.desc())
            .limit(limit)
            .options(
                joinedload(Order.user),
                selectinload(Order.items).selectinload(OrderItem.product),
            )
        )
        return list(session.scalars(query).unique())


def _signature(s: Signs) -> Finding | None:
    """One query per item of a page read: many (healthy < 20) queries per GET.
    Batch jobs (ETL rows counted) are left out: their queries serve many rows."""
    q = s.number("db_queries_per_request")
    if q is None or q >= 1000 or s.counter("etl_rows_total") > 0:
        return None
    if s.slowest_method not in ("GET", ""):
        return None
    score = strength(q, 20.0)
    return finding(
        "n-plus-one",
        score,
        (Clue("DB queries per request", q, "< 20"),),
        confirm="profile=py-spy",
    )


SCENARIO: Scenario[FeedLoader, FeedParams] = Scenario(
    signature=_signature,
    slug="n-plus-one",
    title="Query optimisation: N+1 queries from lazy loading in a loop",
    seeds=(10, 49),
    kind="fault",
    summary=(
        "The order feed loads 20 orders, then one query per order for its items, per item "
        "for its product and per order for its user: ~90 statements per request. Eager "
        "loading (joinedload + selectinload) makes it 3."
    ),
    faulty=LazyLoading,
    fixed=EagerLoading,
    params=FeedParams,
    requires=("postgres",),
    workload="order_feed",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="db_queries_per_request",
        op=">=",
        threshold=50.0,
        description="dozens of SQL statements per request",
    ),
    answers=(
        Answer(
            "A DB query takes 10 seconds. How will you optimize it from API side?",
            """\
Count the statements before tuning one: a request that takes seconds is often dozens
of fast queries. The order feed runs {faulty.db_queries_per_request} statements per request
(one per order for its items, per item for its product); eager loading makes it
{fixed.db_queries_per_request}, and p95 goes from {faulty.p95_ms} ms to {fixed.p95_ms} ms.
`pg_stat_statements` shows the per-order query with calls = 20 x requests, and
`Server-Timing` says `db;desc="N queries"`. Then `EXPLAIN (ANALYZE, BUFFERS)` the statements
that remain (slow-query). Reproduce with `make fault=n-plus-one compare`.""",
        ),
        Answer(
            "How do you cache queries?",
            """\
Only once the query count is right: cache the rendered feed (the result the endpoint
serves) in Redis with a TTL when it is read far more than written, keyed by its inputs
(no-cache measures it). Caching an N+1 hides it until the cache is cold.""",
        ),
        Answer(
            "When to denormalize?",
            """\
When the same aggregate is read constantly and written rarely, and a join cannot serve
it fast enough: an `items_count` column kept by the write path, or a materialised view
refreshed on a schedule. Each costs a second place to keep right; measure the read first
(here {fixed.db_queries_per_request} statements per request needed no denormalisation).""",
        ),
        Answer(
            "ORM query is slow.",
            """\
An ORM makes lazy loading invisible: touching `order.items` in a loop is one query per
order. Here that is {faulty.db_queries_per_request} statements per request and a DB share
of {faulty.db_time_share}. Load what the response needs in the query (`selectinload` for
collections, `joinedload` for many-to-one) and set `lazy="raise"` so that a forgotten
eager load fails in tests.""",
        ),
        Answer(
            "Why raw SQL may be faster?",
            """\
Raw SQL is one statement shaped for the answer: no per-row identity map, no entity
objects, aggregates in the database. The ORM with eager loading already gets the count to
{fixed.db_queries_per_request} here; orm-overhead measures the remaining CPU cost of
entities against a SQL aggregate.""",
        ),
        Answer(
            "How to keep ORM + raw hybrid?",
            """\
Keep the ORM for writes and entity logic, and use SQLAlchemy Core (`select()` of
columns, `func.count`) or `text()` with bound parameters for the hot reads, on the same
session and transaction. Map the rows into Pydantic models at the edge, so routes do not
care which path produced them.""",
        ),
    ),
    diagnosis="""\
**What you see.** `db_queries_per_request` (histogram; summary.json) at ~90
for `GET /orders`; the DB share of request time high although each statement
is fast; `pg_stat_statements` shows `SELECT ... FROM order_items WHERE
order_items.order_id = %s` with calls = 20 x requests. The Server-Timing header
says `db;desc="91 queries"`.

**Find it.** Turn on statement logging for one request (`echo=True`, or
`log_min_duration_statement=0` on the lab's Postgres) and count; in code, look
for relationship attributes touched in a loop or in a serializer.

**Fix.** Load what the response needs in the query: `selectinload` for
collections (one `IN` query per relation), `joinedload` for many-to-one; or
one hand-written query (ORM + Core/raw SQL hybrid, see orm-overhead). Setting
`lazy="raise"` on relationships makes a forgotten eager load fail in tests
instead of in production.

**Cache or denormalise? (seed 10).** Only after the query count is right:
cache the rendered feed in Redis with a TTL when it is read far more than
written; denormalise (an `items_count` column, a materialised view) when the
same aggregate is read constantly and updated rarely.
""",
)
