"""Engine, sessions and the hooks that measure every statement.

SQLite is the embedded default so that scenarios without `postgres` in their
`requires` run on a bare machine; DATABASE_URL switches to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from target_app import metrics
from target_app.observability import current_timing
from target_app.settings import Settings

__all__ = ["Database", "ensure_sqlite_dir"]


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


class Database:
    def __init__(self, settings: Settings) -> None:
        url = settings.database_url
        ensure_sqlite_dir(url)
        kwargs: dict[str, Any] = {"pool_pre_ping": False}
        if url.startswith("sqlite"):
            # SQLite serialises writers anyway; a few connections suffice, and
            # each one's page cache is RSS, so fewer keep the baseline flat. No
            # overflow: overflow connections are closed on return, and opening
            # one (with its PRAGMAs) on every burst showed up in py-spy at 4%.
            kwargs["connect_args"] = {"check_same_thread": False}
            kwargs["pool_size"] = min(settings.db_pool_size, 8)
            kwargs["max_overflow"] = 0
        else:
            kwargs["pool_size"] = settings.db_pool_size
            kwargs["max_overflow"] = settings.db_max_overflow
            kwargs["pool_timeout"] = 5
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if settings.lab_instrumentation:
            _instrument(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # One slot per connection the pool can hand out (see api/deps.py:
        # requests wait for a slot on the event loop, not in a thread).
        connections = kwargs["pool_size"] + kwargs["max_overflow"]
        self.slots = asyncio.Semaphore(connections)
        # Sessions close on threads of their own (at most one per connection),
        # never waiting for the request threadpool (api/deps.py).
        self.closers = anyio.CapacityLimiter(connections)

    @contextlib.asynccontextmanager
    async def request_session(self) -> AsyncIterator[Session]:
        """A request's session: a slot first, closed whatever happens (see api/deps.py)."""
        async with self.slots:
            session = self.sessions()
            try:
                yield session
            finally:
                # Closing may be a round trip (ROLLBACK): off the loop, on the
                # database's own limiter so that it never waits for the busy
                # threadpool either.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(session.close, limiter=self.closers)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA cache_size=-1024")  # 1 MiB per connection, not 2
    cursor.close()


def _record_statement(elapsed: float) -> None:
    metrics.DB_QUERY_DURATION.observe(elapsed)
    timing = current_timing()
    if timing is not None:
        timing.db_seconds += elapsed
        timing.db_queries += 1


def _timed(execute: Callable[..., None]) -> Callable[..., bool]:
    """A DialectEvents listener that runs the dialect's own `execute` and times it."""

    def listener(*args: Any) -> bool:
        started = time.perf_counter()
        execute(*args)
        _record_statement(time.perf_counter() - started)
        return True  # executed: the engine must not run it again

    return listener


def _instrument(engine: Engine) -> None:
    # Statements are timed around the dialect's own execute (DialectEvents), not
    # with before/after_cursor_execute: one ConnectionEvents listener puts the
    # whole engine on its evented path, where every Connection builds a joined
    # dispatcher and every begin, execute and commit dispatches to it. On the
    # product page that cost 40-90 us per request (2 statements); this costs
    # the timing alone. Same statements counted, same window (the cursor's
    # execute), and like after_cursor_execute only statements that succeeded.
    dialect = engine.dialect
    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        event.listen(engine, name, _timed(getattr(dialect, name)))

    # Count a check-in only for a connection whose check-out was counted: a
    # connection that failed to open is checked in without ever going out, and
    # counting it drove the gauge negative while the database was down.
    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        record.info["lab_checked_out"] = True
        metrics.DB_POOL_CHECKED_OUT.inc()

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop("lab_checked_out", False):
            metrics.DB_POOL_CHECKED_OUT.dec()
