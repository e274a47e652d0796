"""orm-overhead (seed 49): ORM entities loaded to aggregate in Python.

Seam: `SalesRepository`, the sales report repository of `GET /reports/sales`
(`seams.pick(orm_overhead.SCENARIO)`). The faulty variant materialises every order
item as an ORM object and sums in Python; the fixed one asks SQL for the sums.
The repository shows the hybrid: ORM for entities, Core for aggregates.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding

__all__ = ["SCENARIO", "AggregateInPython", "AggregateInSql", "SalesParams", "SalesRepository"]


class SalesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_orders: int = Field(
        2_000, ge=10, le=1_000_000, description="the report covers the newest N orders"
    )


class SalesRepository(Protocol):
    """The seam: units and revenue per product category, over the newest orders."""

    def sales(self, session: Session, newest_order: int) -> list[dict[str, Any]]: ...


def _report(rows: dict[str, tuple[int, Decimal]]) -> list[dict[str, Any]]:
    return [
        {"category": c, "units": units, "revenue": str(revenue.quantize(Decimal("0.01")))}
        for c, (units, revenue) in sorted(rows.items())
    ]


# --- faulty -----------------------------------------------------------------


class AggregateInPython:
    """Load each item with its product as ORM objects, then loop and sum."""

    def __init__(self, params: SalesParams) -> None:
        self.window = params.window_orders

    def sales(self, session: Session, newest_order: int) -> list[dict[str, Any]]:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.models import OrderItem

        items = session.scalars(
            select(OrderItem)
            .where(OrderItem.order_id > newest_order - self.window)
            .options(joinedload(OrderItem.product))
        )
        totals: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
        for item in items:
            units, revenue = totals[item.product.category]
            totals[item.product.category] = (
                units + item.quantity,
                revenue + item.unit_price * item.quantity,
            )
        return _report(totals)


# --- fixed ------------------------------------------------------------------


class AggregateInSql:
    """One GROUP BY in SQL (Core, through the same session): rows out, not objects."""

    def __init__(self, params: SalesParams) -> None:
        self.window = params.window_orders

    def sales(self, session: Session, newest_order: int) -> list[dict[str, Any]]:
        from target_app.models import OrderItem, Product

        rows = session.execute(
            select(
                Product.category,
                func.sum(OrderItem.quantity),
                func.sum(OrderItem.unit_price * OrderItem.quantity),
            )
            .join(Product, Product.id == OrderItem.product_id)
            .where(OrderItem.order_id > newest_order - self.window)
            .group_by(Product.category)
        )
        return _report({c: (int(u), Decimal(r)) for c, u, r in rows})


def _signature(s: Signs) -> Finding | None:
    """Rows turned into ORM objects one by one: CPU per request and loop lag high
    (Signs.cpu_heavy) around a few queries that take a fair share of the time."""
    q = s.number("db_queries_per_request") or 0.0
    share = s.number("db_time_share") or 0.0
    if not 0.5 <= q < 20 or not 0.2 <= share < 0.8:
        return None
    score = s.cpu_heavy()
    return finding(
        "orm-overhead",
        score,
        (
            Clue("app CPU per request", s.number("cpu_ms_per_served"), "< 5", "ms"),
            Clue("event-loop lag p99", s.number("event_loop_lag_p99_ms"), "< 100", "ms"),
            Clue("share of request time in the DB", share),
        ),
        confirm="profile=py-spy",
    )


SCENARIO: Scenario[SalesRepository, SalesParams] = Scenario(
    signature=_signature,
    slug="orm-overhead",
    title="ORM query slow: entities aggregated in Python instead of SQL",
    seeds=(49,),
    kind="fault",
    summary=(
        "A sales report loads thousands of order items as ORM objects to sum them in Python; "
        "one SQL GROUP BY returns eight rows. Same answer, a fraction of the CPU."
    ),
    faulty=AggregateInPython,
    fixed=AggregateInSql,
    params=SalesParams,
    requires=("postgres",),
    workload="sales_report",
    default_load={"users": 10, "duration": "30s"},
    symptom=Symptom(
        metric="app_cpu_ms_per_request",
        op=">",
        threshold=20.0,
        description="the app burns CPU building ORM objects the database could have summed",
    ),
    diagnosis="""\
**What you see.** High app CPU per request with a *low* query count (1-2) and
a DB share well under half: the time is in Python, building objects. py-spy
(`profile=py-spy`) puts SQLAlchemy's loading (`instances`, `_instance`) and
`AggregateInPython.sales` on top.

**Why raw SQL (or Core) may be faster.** The ORM's cost is per *object*
(identity map, attribute instrumentation, relationship wiring); an aggregate
returns a handful of rows and no objects. Rule of thumb: ORM for entities
you will change, SQL for reports.

**Keep ORM + raw hybrid.** One repository per aggregate root, ORM for
reads/writes of entities, `select(...).group_by(...)` (Core) or `text()` for
reporting queries, both on the same `Session` and transaction (as here).
""",
    answers=(
        Answer(
            question="ORM query is slow.",
            answer="""\
Start by finding out where the time goes: in the database, or in what the ORM
does with the rows. `make fault=orm-overhead compare` runs the sales report
both ways. The faulty variant loads every order item of the newest 2,000 orders
as an ORM object and sums in Python. The fixed variant sends one `GROUP BY`.

- App CPU per request: {faulty.app_cpu_ms_per_request} ms against
  {fixed.app_cpu_ms_per_request} ms ({ratio.app_cpu_ms_per_request}x).
- p95: {faulty.p95_ms} ms against {fixed.p95_ms} ms.
- Queries per request stay at {faulty.db_queries_per_request}, and
  `db_time_share` is only {faulty.db_time_share}.

So the query is not slow: building objects is. `make fault=orm-overhead
profile=py-spy load` confirms it. SQLAlchemy's loading (`instances`,
`_instance`, attribute setters) and `AggregateInPython.sales` are at the top of
the flame graph.

If the share of time in the DB were high instead, the statement itself would be
the problem (see slow-query), or the number of statements (see n-plus-one).
""",
        ),
        Answer(
            question="Why raw SQL may be faster?",
            answer="""\
What changes is the *shape* of the query, not the syntax. Per row, the ORM
pays for:

- an identity-map lookup and an `InstanceState`;
- instrumented attribute sets;
- relationship wiring (`joinedload` repeats each product on every item, and the
  ORM removes the duplicates in Python);
- `Decimal` arithmetic in a Python loop.

On top of that, every item row crosses the wire. An aggregate does the sum in
PostgreSQL's C code next to the data and returns one row per category: no
objects, almost no bytes.

The fixed variant (`AggregateInSql`) is still SQLAlchemy. It is a Core
`select(...).group_by(...)`, not a `text()` string, and a hand-written string
for the same statement would be no faster. The saving is the whole
{ratio.app_cpu_ms_per_request}x drop in CPU per request.

Before dropping the ORM, try the cheaper steps: select columns rather than
entities, since `Row` tuples skip the identity map, and stream big reads with
`yield_per`. Move to SQL when the result is a report and not something you will
change.
""",
        ),
        Answer(
            question="How to keep ORM + raw hybrid?",
            answer="""\
Keep both in the repository, behind one interface (here the `SalesRepository`
seam):

- **Entities:** the ORM does reads and writes of things you will change. Unit of
  work, relationships and validation are worth their cost there.
- **Reports and bulk reads:** Core `select()` or `text()` with bound parameters
  (never f-strings: see sql-injection), returning rows mapped to plain dicts or
  Pydantic models, as `_report` does here.
- **Same `Session`:** both run through `session.execute(...)`, so they share one
  connection and one transaction. A report can see the entity changes of the
  same request, and everything commits or rolls back together.
- **One answer:** test that both paths give the same result. This scenario's two
  variants return the same report (tests/app/test_seams_agree.py checks it).

Routes never build SQL. They call the repository.
""",
        ),
    ),
)
