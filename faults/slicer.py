"""slicer: a fragmenting link makes every byte of a result set cost time.

Network condition (both variants): Toxiproxy's `slicer` on the Postgres link
cuts the DB's answers into ~32-byte pieces, 0.5 ms apart, as a lossy or
MTU-mismatched path does. Seam: the columns the product list fetches,
`faults.pick("slicer")`, used by `GET /products`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select

from faults._contract import Scenario, Symptom, Toxic
from target_app.models import Product

__all__ = ["SCENARIO", "ListColumnsOnly", "SelectStar"]


class ListQueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- faulty -----------------------------------------------------------------


class SelectStar:
    """Whole ORM entities, the long description included, for a list that never shows it."""

    def __init__(self, params: ListQueryParams) -> None:
        pass

    def query(self) -> Select:
        return select(Product)


# --- fixed ------------------------------------------------------------------


class ListColumnsOnly:
    """Only the columns the list renders: fewer bytes on the wire, fewer slices."""

    def __init__(self, params: ListQueryParams) -> None:
        pass

    def query(self) -> Select:
        return select(
            Product.id, Product.sku, Product.name, Product.category, Product.price, Product.stock
        )


SCENARIO = Scenario(
    slug="slicer",
    title="A fragmenting network: big result sets pay per byte",
    seeds=(50,),
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
    symptom=Symptom(
        metric="p50_ms",
        op=">",
        threshold=1300.0,
        description="a list page's latency follows the bytes it fetches, not the rows it shows",
    ),
    diagnosis="""\
**What you see.** Latency proportional to response *size* on the DB link, not
to row count or query plan: `db_query_duration_seconds` is high while
`pg_stat_statements` shows the same statements fast on the server, and the
Toxiproxy byte counters for `postgres` grow with every page.

**Fix.** Select the columns the endpoint renders (`select(Product.id, ...)` or
`load_only(...)`), defer large columns (`deferred()`), paginate, and compress
or move bulk transfers off chatty links. Then the same network costs 2.5x less.
""",
)
