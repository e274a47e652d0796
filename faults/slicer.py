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

from faults._contract import Scenario, Symptom, Toxic

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


SCENARIO: Scenario[ListQuery, ListQueryParams] = Scenario(
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
)
