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

from faults._contract import Scenario, Symptom, Variant

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


SCENARIO: Scenario[ProductSearch, LookupParams] = Scenario(
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
)
