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

from faults._contract import Scenario, Symptom

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


SCENARIO: Scenario[SalesRepository, SalesParams] = Scenario(
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
)
