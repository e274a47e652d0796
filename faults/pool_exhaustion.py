"""pool-exhaustion (seeds 25, 27): sessions that are never closed drain the pool.

Seam: `SessionSource`, where the invoice route's DB session comes from
(`GET /orders/{order_id}/invoice`). Faulty: a thread-scoped session
(`scoped_session`, as ported from a Flask app) that nobody `remove()`s, so
every threadpool thread keeps a connection checked out forever. Fixed: a
`yield` dependency that opens a session per request and always closes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from faults._contract import Scenario, Symptom

if TYPE_CHECKING:
    from target_app.db import Database

__all__ = ["SCENARIO", "RequestScopedSessions", "SessionSource", "ThreadScopedSessions"]


class SessionSource(Protocol):
    """The seam: a dependency body that yields the request's session."""

    def sessions(self, database: Database) -> Iterator[Session]: ...


class SessionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- faulty -----------------------------------------------------------------


class ThreadScopedSessions:
    """One session per thread, reused across requests and never removed.

    After its first query a session holds its transaction, and with it a
    pooled connection, until someone calls `remove()`. FastAPI's threadpool
    has 40 threads; the pool has 20 connections: the 21st thread waits
    `pool_timeout` and fails with QueuePool's TimeoutError.
    """

    def __init__(self, params: SessionParams) -> None:
        self._registry: scoped_session[Session] | None = None
        self._lock = threading.Lock()

    def sessions(self, database: Database) -> Iterator[Session]:
        with self._lock:
            if self._registry is None:
                self._registry = scoped_session(sessionmaker(database.engine))
        yield self._registry()  # no remove(), no close(): the bug


# --- fixed ------------------------------------------------------------------


class RequestScopedSessions:
    """A `yield` dependency: one session per request, closed in `finally` whatever happens."""

    def __init__(self, params: SessionParams) -> None:
        pass

    def sessions(self, database: Database) -> Iterator[Session]:
        with database.sessions() as session:  # closes (returns the connection) on exit
            yield session


SCENARIO: Scenario[SessionSource, SessionParams] = Scenario(
    slug="pool-exhaustion",
    title="Connection pool exhausted: sessions never closed (dependency injection done wrong)",
    seeds=(25, 27),
    kind="fault",
    summary=(
        "A thread-scoped session that is never removed keeps one pooled connection per "
        "threadpool thread; past the pool's size, requests wait pool_timeout and fail. A "
        "yield dependency that always closes keeps checked-out connections at the concurrency."
    ),
    faulty=ThreadScopedSessions,
    fixed=RequestScopedSessions,
    params=SessionParams,
    requires=("postgres",),
    workload="invoices",
    default_load={"users": 50, "duration": "30s"},
    symptom=Symptom(
        metric="error_rate",
        op=">",
        threshold=0.05,
        description="requests fail waiting for a pooled connection (QueuePool timeout)",
    ),
    diagnosis="""\
**What you see.** `db_pool_checked_out` climbs to the pool's limit (20) and
stays there even when the load stops (summary: `db_pool_checked_out_end`: 20
vs 0). The 500s in app.log are of two kinds, both from the thread-scoped
session: `QueuePool limit of size 10 overflow 10 reached, connection timed
out` after `pool_timeout` (5 s), and, far more often, `InvalidRequestError:
This session is provisioning a new connection; concurrent operations are not
permitted`: FastAPI runs the dependency and the route body on different
threadpool threads, so one thread's session is handed to two requests that
then use it at once. Postgres shows the held connections `idle in transaction`:

    psql -h 127.0.0.1 -p 15432 -U lab shop -c "SELECT state, count(*) FROM pg_stat_activity
      WHERE datname = 'shop' GROUP BY state"

**Why Depends() (seed 27).** A dependency ties a resource to the request:
`def get_session(): with SessionLocal() as s: yield s` opens it for the
request and closes it after the response, also on exceptions; routes declare
`session: Annotated[Session, Depends(get_session)]` and share it within the
request (dependencies are cached per request), never across requests.

**Pooling (seed 25).** Size the pool for the concurrency that needs the DB at
once (threadpool size x workers, within Postgres' `max_connections`), set
`pool_timeout` short so exhaustion fails fast and visibly, `pool_pre_ping` for
dropped connections; one engine per database (see multi-db), created once.
""",
)
