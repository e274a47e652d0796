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

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, strength

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


def _signature(s: Signs) -> Finding | None:
    """Sessions never returned to the pool: connections still checked out after
    the load, and requests that waited for one until they timed out."""
    held = s.number("db_pool_checked_out_end") or 0.0
    timeouts = s.log_count("pool timeout")
    if held < 1 or not timeouts:
        return None
    return Finding(
        "pool-exhaustion",
        max(0.6, strength(held, 1.0)),
        (
            Clue("DB pool connections checked out after the load", held, "0"),
            Clue("'db pool timeout' records in app.log", float(timeouts), "0"),
        ),
    )


SCENARIO: Scenario[SessionSource, SessionParams] = Scenario(
    signature=_signature,
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
    answers=(
        Answer(
            question="Your application needs 2 different DB connections. How to manage?",
            answer="""\
Give each database one `Engine`, which means one pool. Create both once at
startup (the lifespan), keep them on `app.state`, and dispose of them at
shutdown. Each gets its own `sessionmaker` and its own dependency
(`OrdersSession`, `AnalyticsSession`), so a route declares which database it
uses. Never open an engine per request: that is a new pool and a new TCP and
auth handshake every time.

Do not spread one business transaction over both databases. There is no
atomic commit across them without two-phase commit. Write to one and carry the
change over with an outbox.

This lab's app has one database, so what this scenario measures is the pool
itself. The leak here sits in one pool: the faulty registry is even kept per
`Database` object. After the load, the faulty run still has
{faulty.db_pool_checked_out_end} connections checked out, against
{fixed.db_pool_checked_out_end} for the fixed one. A leak behind one of two
engines would drain that database's pool and leave the other's untouched. The
lab does not run two databases. The multi-db pattern (issue "Identity and
correctness") will measure that.
""",
        ),
        Answer(
            question="How to handle connection pooling?",
            answer="""\
Size the pool for the concurrency that needs the database at once, and make
sure that concurrency cannot exceed it.

- **The settings:** here `pool_size` 10 plus `max_overflow` 10, so 20
  connections, and a `pool_timeout` of 5 s.
- **Bound the concurrency:** the app's fixed path makes each request wait for
  one of 20 slots (`Database.slots`, an `asyncio.Semaphore`) on the event loop
  before it takes a connection. Threadpool threads therefore never queue inside
  `QueuePool`.
- **Fail fast:** keep `pool_timeout` short so exhaustion shows up as a clean
  503 with `Retry-After` rather than a hang.
- **The server's limit:** keep workers x (pool_size + max_overflow) under
  PostgreSQL's `max_connections`, or put PgBouncer in transaction mode in front
  of it.
- **Dropped connections:** `pool_pre_ping` or `pool_recycle` handle connections
  a firewall or failover dropped.

`make fault=pool-exhaustion compare` shows what an unreturned connection does.
The error rate is {faulty.error_rate} for the faulty run against
{fixed.error_rate} for the fixed one. Those errors are 503s after the 5 s
`pool_timeout`: p95 is {faulty.p95_ms} ms against {fixed.p95_ms} ms, and
app.log has one `db pool timeout` line for each. In Grafana, "Lab database",
the panels "DB pool connections checked out" and "DB pool saturation" show the
faulty pool pinned at its limit. It stays there after the load stops
(`db_pool_checked_out_end`: {faulty.db_pool_checked_out_end} against
{fixed.db_pool_checked_out_end}).
""",
        ),
        Answer(
            question="How to switch DB based on tenant?",
            answer="""\
This scenario does not measure it: the app has one tenant and one database.
How it is done:

1. **Find the tenant.** A request-scoped dependency takes it from the
   authenticated identity, never from a header or parameter the client can set
   freely.
2. **Pick the storage.**
   - Schema per tenant: one engine, and
     `execution_options(schema_translate_map=...)` on the session's
     connection.
   - Database per tenant: one engine per tenant, created lazily and kept in a
     bounded LRU. Each gets a small pool, because N tenants x pool size is the
     real connection count. Dispose of an engine when it leaves the cache.
3. **Keep it in the request.** The tenant must never sit in a module global or
   in a context that outlives the request.

The tenant-leak and multi-db scenarios (issue "Identity and correctness") will
prove the isolation with two tenants under concurrent load.
""",
        ),
        Answer(
            question="How do you share DB session across routes?",
            answer="""\
Share the *way to get* a session, not a session. Declare one dependency, e.g.
`DbSession = Annotated[Session, Depends(get_session)]`, and let every route
take it. Within one request FastAPI caches a dependency's result, so the route
and its sub-dependencies (repositories, services) all get the same session.
Across requests, nobody shares one.

The faulty variant shows the usual way this goes wrong. It keeps a
`scoped_session` registry, the Flask-SQLAlchemy pattern ported without its
teardown: nobody calls `remove()`. Each request's session keeps its
transaction and its pooled connection (`idle in transaction` in
`pg_stat_activity`) until the pool is empty. After the load,
{faulty.db_pool_checked_out_end} connections are still checked out, against
{fixed.db_pool_checked_out_end}. The fixed variant, `RequestScopedSessions`,
uses the app's own dependency, `Database.request_session()` in
target_app/db.py.
""",
        ),
        Answer(
            question="Why use Depends()?",
            answer="""\
- **Lifetime:** a `yield` dependency ties the resource to the request. It opens
  before the route runs, and its exit runs after the route, on success and on
  exceptions alike.
- **One place:** the code that opens and closes sessions lives in one
  function, not in a try/finally in every route.
- **Testable:** `app.dependency_overrides[get_session]` points every route at a
  test database.
- **Typed and composable:** a repository dependency can depend on the session,
  and mypy checks what each route receives.
- **Cached per request:** one session per request, whoever asks for it.

The lab measures the payoff as "connections come back". With the fixed
dependency, the pool ends the run at {fixed.db_pool_checked_out_end} checked
out and the route answers no 503. Without it, the faulty run ends at
{faulty.db_pool_checked_out_end} and its error rate is {faulty.error_rate}.
""",
        ),
        Answer(
            question="How to close session safely?",
            answer="""\
Close it in `finally`, or use `with SessionLocal() as session: yield session`.
Commit explicitly where the work succeeds. `close()` rolls back whatever was
not committed and gives the connection back.

This app's dependency does three more things, each against a failure the lab
hit (see the docstrings of target_app/api/deps.py and db.py):

- It is `async`. It waits for a connection slot on the event loop, holding no
  thread.
- It closes the session under `anyio.CancelScope(shield=True)`, so a client
  that disconnects cannot cancel the close.
- It runs the close (a ROLLBACK round trip) on the database's own
  `CapacityLimiter`, never on the request threadpool. A sync `yield`
  dependency can deadlock there under a burst: endpoints hold every thread
  while waiting for connections, and the requests that hold the connections
  wait for a thread to close them.

As a safety net for the leak that slips through, set PostgreSQL's
`idle_in_transaction_session_timeout`. To check that the leak is gone, watch
`pg_stat_activity`: no `idle in transaction` sessions once the load is over,
and `db_pool_checked_out_end` {fixed.db_pool_checked_out_end} in the fixed run.
""",
        ),
    ),
)
