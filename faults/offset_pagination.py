"""offset-pagination (seed 11): page N of a million rows, with OFFSET or with a cursor.

Seam: `Pager`, how `GET /products/pages` finds its page
(`seams.pick(offset_pagination.SCENARIO)`).
Clients send both a page number and, when they have one, a cursor: the faulty
variant uses the page number (`OFFSET (page-1)*size`: the database reads and
throws away every row before it); the fixed one uses the cursor (`WHERE id >
:after`: an index seek, the same cost at any depth). Cursors are opaque and
signed (target_app/cursors.py), so a client cannot forge or tamper with one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from target_app.cursors import Cursors
    from target_app.models import Product

__all__ = ["SCENARIO", "KeysetPages", "OffsetPages", "Pager", "PagesParams"]


class PagesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(20, ge=1, le=500, description="items per page")


class Pager(Protocol):
    """The seam: one page of the catalogue, found by page number or by cursor."""

    def page(
        self, session: Session, cursors: Cursors, page: int, cursor: str | None
    ) -> dict[str, Any]: ...


def _items(rows: list[Product]) -> list[dict[str, Any]]:
    return [{"id": p.id, "sku": p.sku, "name": p.name, "price": str(p.price)} for p in rows]


# --- faulty -----------------------------------------------------------------


class OffsetPages:
    """LIMIT/OFFSET by page number: page 49,000 makes the DB walk 980,000 rows first."""

    def __init__(self, params: PagesParams) -> None:
        self.size = params.size

    def page(
        self, session: Session, cursors: Cursors, page: int, cursor: str | None
    ) -> dict[str, Any]:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.models import Product

        rows = list(
            session.scalars(
                select(Product).order_by(Product.id).offset((page - 1) * self.size).limit(self.size)
            )
        )
        return {"page": page, "items": _items(rows)}


# --- fixed ------------------------------------------------------------------


class KeysetPages:
    """Keyset (seek) pagination on the primary key, behind an opaque signed cursor."""

    def __init__(self, params: PagesParams) -> None:
        self.size = params.size

    def page(
        self, session: Session, cursors: Cursors, page: int, cursor: str | None
    ) -> dict[str, Any]:
        from target_app.models import Product

        after = cursors.decode(cursor) if cursor else 0
        rows = list(
            session.scalars(
                select(Product).where(Product.id > after).order_by(Product.id).limit(self.size)
            )
        )
        following = cursors.encode(rows[-1].id) if len(rows) == self.size else None
        return {"items": _items(rows), "next_cursor": following}


def _signature(s: Signs) -> Finding | None:
    """Pages that get slower the deeper they are: database-bound requests whose p95
    is ten times their p50 (the first pages fast, the deep ones scanning)."""
    p50, p95 = s.number("p50_ms"), s.number("p95_ms")
    if not s.db_bound or not p50 or not p95:
        return None
    score = strength(p95 / p50, 10.0)
    return finding(
        "offset-pagination",
        score,
        (
            Clue("client p95 / p50", p95 / p50, "< 10"),
            Clue("share of request time in the DB", s.number("db_time_share"), "< 0.8"),
        ),
        confirm="EXPLAIN ANALYZE a deep page",
    )


SCENARIO: Scenario[Pager, PagesParams] = Scenario(
    signature=_signature,
    slug="offset-pagination",
    title="Paginating 10 lakh (1,000,000) records: OFFSET vs cursor",
    seeds=(11,),
    kind="fault",
    summary=(
        "Deep pages with OFFSET cost the rows skipped: page 49,000 reads 980,000 rows to "
        "return 20. A keyset cursor (WHERE id > :after, opaque and signed) costs the same "
        "at page 1 and at page 49,000."
    ),
    faulty=OffsetPages,
    fixed=KeysetPages,
    params=PagesParams,
    requires=("postgres",),
    workload="deep_pages",
    # One user measures what a page costs; with more, the first page's latency
    # also holds the time it queued behind someone's deep page.
    default_load={"users": 1, "duration": "30s"},
    symptom=Symptom(
        metric="p50_ms",
        route="GET /products/pages (deep)",
        baseline_route="GET /products/pages (first)",
        # The requirement a user states for a paginated API: any page costs about what
        # the first one does, within 2x (the bench's target for the fix too). OFFSET
        # reads every skipped row, so page 49,000 misses it by an order of magnitude.
        op=">",
        threshold=2.0,
        description="a deep page costs more than twice the first (every page within 2x)",
    ),
    diagnosis="""\
**What you see.** Latency that grows with the page number (summary.json
`routes`: "deep" vs "first"), DB time share near 1, and in EXPLAIN ANALYZE a
`Limit -> Index Scan` whose *actual rows* on the inner node is offset + size.

**Offset vs cursor (seed 11).** OFFSET is simple and allows jumping to page N,
but its cost is linear in N and pages shift when rows are inserted (duplicates
and gaps). A cursor (keyset/seek) remembers the last key seen and asks for
`id > :after ORDER BY id LIMIT :size`: constant cost with an index, stable
under inserts, no page numbers. **Why cursor is faster:** the index seeks
straight to the key instead of counting past every earlier row.

**Design.** Return `next_cursor` (opaque, signed so clients cannot craft
positions) and total counts only if cheap (estimates from `pg_class` for a
million rows); sort keys must be unique (add the id as a tie-breaker).
""",
    answers=(
        Answer(
            question="You need to show 10 lakhs records. How will you design pagination?",
            answer="""\
Nobody reads a million rows at once: serve pages, and make a page cost the same
whatever its depth. That means a keyset cursor on a unique sort key, not
`OFFSET`. The fixed variant (`KeysetPages`) asks for
`WHERE id > :after ORDER BY id LIMIT :size` and answers `next_cursor`, an opaque
token signed with HMAC (target_app/cursors.py), so a client can neither forge nor
tamper with a position. Page size is bounded (`size` at most 500), and the page
has no exact total: `count(*)` over a million rows is a scan of its own, so use
`pg_class.reltuples` as an estimate if the UI needs one.

The lab holds the 1,000,000 products. `make fault=offset-pagination compare`
runs one user who reads page 1 and page 49,000 in turn. The report's per-route
table sets the deep page's p50 against the first page's. The requirement, and
the symptom, is every page within 2x of the first: OFFSET misses it, the
cursor meets it. Over both routes, p95 is {faulty.p95_ms} ms with OFFSET and
{fixed.p95_ms} ms with the cursor ({ratio.p95_ms}x).
""",
        ),
        Answer(
            question="Offset vs cursor pagination?",
            answer="""\
- **OFFSET** is simple and can jump to page N or show "page 7 of 50,000". Its
  cost grows with N, though: the database makes and throws away every row before
  the page. Pages also shift when rows are inserted or deleted in between, so
  readers see duplicates and gaps.
- **A cursor** (keyset, or seek) costs the same at any depth and stays stable
  under inserts. What it cannot do is jump to an arbitrary page number. The lab
  covers "continue where I left" with a bookmark instead
  (`GET /products/pages/bookmark?after_id=`).
- **Sorting by something other than the id:** the key must still be unique. Add
  the id as a tie-breaker, put both columns in the cursor and compare them as a
  row, `(created_at, id) > (:c, :id)`, with a composite index on them.
- **Which to use:** OFFSET is fine for short admin lists. Use a cursor for feeds,
  infinite scroll, exports and API clients that walk everything.

The lab shows the difference as cost per depth. In the faulty run the database
does nearly all the work: `db_time_share` is {faulty.db_time_share}, against
{fixed.db_time_share} in the fixed run.
""",
        ),
        Answer(
            question="Why cursor is faster?",
            answer="""\
A B-tree can seek to a key, but it cannot count. `id > :after` walks down the
primary-key index in a few page reads and then reads `size` entries. `OFFSET k`
has no way to skip ahead: the index stores no positions, so PostgreSQL reads k
entries (and their heap rows) one by one and drops them. To see it:

    psql -h 127.0.0.1 -p 15432 -U lab shop -c "EXPLAIN (ANALYZE, BUFFERS)
      SELECT * FROM products ORDER BY id OFFSET 980000 LIMIT 20"

The plan shows `Limit -> Index Scan using products_pkey` with *actual rows*
980,020 on the inner node, and thousands of buffers. The same query with
`WHERE id > 980000` reads 20 rows from a handful of buffers.

The time is spent in PostgreSQL, not in Python, so
`make fault=offset-pagination profile=py-spy load` shows the worker waiting in
psycopg. In Grafana, "Lab database", the panel "DB time share of request time"
is near 1. Over both routes, the client p99 is {faulty.p99_ms} ms with OFFSET
and {fixed.p99_ms} ms with the cursor: with OFFSET the deep pages make up the tail.
""",
        ),
    ),
)
