"""pool-exhaustion (seeds 25, 27): sessions that are never closed drain the pool.

Seam: `SessionSource`, where the invoice route's DB session comes from
(`GET /orders/{order_id}/invoice`, its dependency `_invoice_session`).
Faulty: a `scoped_session` registry keyed by the request (the Flask-SQLAlchemy
pattern, ported without its teardown): nobody calls `remove()`, so the
registry keeps every request's session, with its open transaction and its
pooled connection, for ever. Fixed: a dependency that opens a session per
request and always closes it, with the requests that hold one bounded by the
pool's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from faults._contract import Scenario, Symptom

if TYPE_CHECKING:
    from target_app.db import Database

__all__ = ["SCENARIO", "RequestScopedSessions", "SessionSource", "UnremovedScopedSessions"]


class SessionSource(Protocol):
    """The seam: the request's session, for the length of the request."""

    def session(self, database: Database) -> contextlib.AbstractAsyncContextManager[Session]: ...


class SessionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _request_scope() -> str:
    """The registry's key: the id of the request being served (Flask keyed it by app context)."""
    from target_app.observability import current_timing

    timing = current_timing()
    return "outside-a-request" if timing is None else timing.request_id


# --- faulty -----------------------------------------------------------------


class UnremovedScopedSessions:
    """One session per request from a `scoped_session` registry, and no `remove()`.

    Flask-SQLAlchemy removes the scoped session in `teardown_appcontext`; the
    port kept the registry and lost the teardown. After its first query a
    session holds a transaction, and with it a pooled connection (PostgreSQL
    shows it `idle in transaction`), until someone calls `remove()` or
    `close()`: nobody does, and the registry keeps the session alive. After
    pool_size + max_overflow requests (20) the pool is empty: the next request
    waits `pool_timeout` (5 s) and gets QueuePool's TimeoutError.
    """

    def __init__(self, params: SessionParams) -> None:
        self._registries: dict[int, scoped_session[Session]] = {}

    @contextlib.asynccontextmanager
    async def session(self, database: Database) -> AsyncIterator[Session]:
        registry = self._registries.get(id(database))
        if registry is None:
            registry = scoped_session(sessionmaker(database.engine), scopefunc=_request_scope)
            self._registries[id(database)] = registry
        yield registry()  # no registry.remove(), no close(): the bug


# --- fixed ------------------------------------------------------------------


class RequestScopedSessions:
    """A `yield` dependency that always closes, and no more sessions than connections.

    The request first waits for one of the database's slots (one per pooled
    connection: pool_size + max_overflow) on the event loop, holding no
    thread; with a slot, a connection is free when the route's first query
    asks for it. The session is closed in `finally`, whatever the route did,
    on the database's own thread limiter (closing is a ROLLBACK round trip,
    and must not wait for a busy request threadpool): see target_app/api/deps.py.
    """

    def __init__(self, params: SessionParams) -> None:
        pass

    @contextlib.asynccontextmanager
    async def session(self, database: Database) -> AsyncIterator[Session]:
        # The app's own request session (target_app/db.py): the fix is to use it.
        async with database.request_session() as session:
            yield session


SCENARIO: Scenario[SessionSource, SessionParams] = Scenario(
    slug="pool-exhaustion",
    title="Connection pool exhausted: sessions never closed (dependency injection done wrong)",
    seeds=(25, 27),
    kind="fault",
    summary=(
        "A scoped_session registry that nobody remove()s keeps every request's session, and "
        "its pooled connection, checked out; past the pool's size, requests wait pool_timeout "
        "and get a 503. A yield dependency that always closes, with as many sessions at once "
        "as the pool has connections, gives every connection back."
    ),
    faulty=UnremovedScopedSessions,
    fixed=RequestScopedSessions,
    params=SessionParams,
    requires=("postgres",),
    workload="invoices",
    default_load={"users": 50, "duration": "30s"},
    # Measured by the pool itself (its checkout/checkin events, target_app/db.py),
    # sampled after Locust has stopped: the requirement is that once the load is
    # over no connection stays checked out. Any connection still out then has no
    # request left that could return it.
    symptom=Symptom(
        metric="db_pool_checked_out_end",
        op=">",
        threshold=0.0,
        description="connections still checked out of the pool once the load is over",
    ),
    diagnosis="""\
**What you see.** `db_pool_checked_out` climbs to the pool's limit (20) within
the first requests and stays there when the load stops (summary:
`db_pool_checked_out_end`: 20 vs 0). Then every invoice is a 503 after 5 s:
app.log has `db pool timeout` lines (QueuePool's `QueuePool limit of size 10
overflow 10 reached, connection timed out, timeout 5.00`), and
`http_requests_total{route="/orders/{order_id}/invoice",status="503"}` counts
them. Postgres shows who holds the connections: the app's sessions, `idle in
transaction`, for minutes:

    psql -h 127.0.0.1 -p 15432 -U lab shop -c "SELECT state, count(*),
      max(now() - xact_start) FROM pg_stat_activity WHERE datname = 'shop' GROUP BY state"

**Why Depends() (seed 27).** A dependency ties a resource to the request:
`def get_session(): with SessionLocal() as s: yield s` opens it for the
request and closes it after the response, also on exceptions; routes declare
`session: Annotated[Session, Depends(get_session)]` and share it within the
request (dependencies are cached per request), never across requests. A
`scoped_session` is for frameworks that call `remove()` at the end of the
request for you; FastAPI does not.

**Pooling (seed 25).** Size the pool for the concurrency that needs the DB at
once (threadpool size x workers, within Postgres' `max_connections`), or bound
that concurrency to the pool (here: one slot per connection, awaited on the
event loop); set `pool_timeout` short so exhaustion fails fast and visibly
(here a 503 with Retry-After), `pool_pre_ping` for dropped connections; one
engine per database, created once. `idle_in_transaction_session_timeout` on
the server is the safety net for the leak that gets through.
""",
)
