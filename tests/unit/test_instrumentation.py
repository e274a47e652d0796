"""The app's own measurements: statements timed by the DB hooks, upstream calls timed by
`measure_upstream`, each checked against what happened outside them.

Statements are counted against SQLite's own trace of what it executed
(`set_trace_callback`, the driver's record), not against the hooks' counter.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from target_app.db import Database
from target_app.observability import RequestTiming, _timing, measure_upstream
from target_app.settings import Settings

pytestmark = pytest.mark.unit


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def timing() -> Iterator[RequestTiming]:
    """A request's timing, current as the middleware makes it."""
    timing = RequestTiming("test-request")
    token = _timing.set(timing)
    try:
        yield timing
    finally:
        _timing.reset(token)


def _database(tmp_path: Path, instrumented: bool = True) -> Database:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        lab_state_file=tmp_path / "toggles.json",
        upload_dir=tmp_path / "uploads",
        lab_instrumentation=instrumented,
    )
    return Database(settings)


def _traced(database: Database) -> list[str]:
    """Every statement SQLite runs on the engine's connections, as SQLite reports it."""
    statements: list[str] = []

    @event.listens_for(database.engine, "connect")
    def _trace(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    return statements


def test_every_statement_is_timed_once_and_only_statements(
    tmp_path: Path, timing: RequestTiming
) -> None:
    database = _database(tmp_path)
    traced = _traced(database)
    before = _sample("db_query_duration_seconds_count")
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t (x) VALUES (:x)"), [{"x": i} for i in range(5)])
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 5
        conn.exec_driver_sql("SELECT 1")
    # The driver's own record: CREATE, one executemany (5 INSERTs traced), SELECT,
    # SELECT 1, plus the transaction's BEGIN/COMMIT, which are not statements of ours.
    ours = [s for s in traced if s.split()[0] in ("CREATE", "INSERT", "SELECT")]
    assert len(ours) == 1 + 5 + 1 + 1
    # executemany is one call to the database, as before_cursor_execute counted it.
    assert timing.db_queries == 4
    assert _sample("db_query_duration_seconds_count") - before == 4
    assert timing.db_seconds > 0


def test_a_failed_statement_is_not_counted(tmp_path: Path, timing: RequestTiming) -> None:
    database = _database(tmp_path)
    with database.engine.connect() as conn, pytest.raises(OperationalError):
        conn.execute(text("SELECT * FROM no_such_table"))
    assert timing.db_queries == 0


def test_the_hooks_keep_the_engine_off_its_evented_path(tmp_path: Path) -> None:
    """Why the statements are timed at the dialect: no ConnectionEvents listener, so no
    joined dispatcher per connection and no dispatch at every begin/execute/commit."""
    database = _database(tmp_path)
    assert not database.engine._has_events
    assert database.engine.dialect._has_events


def test_the_bare_app_times_nothing(tmp_path: Path, timing: RequestTiming) -> None:
    database = _database(tmp_path, instrumented=False)
    before = _sample("db_query_duration_seconds_count")
    with database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert timing.db_queries == 0
    assert _sample("db_query_duration_seconds_count") == before


def test_measure_upstream_records_the_outcome_the_caller_names(timing: RequestTiming) -> None:
    labels = {"dependency": "unit-test", "outcome": "http_503"}
    before = _sample("upstream_request_duration_seconds_count", **labels)
    with measure_upstream("unit-test") as call:
        call.outcome = "http_503"
    assert _sample("upstream_request_duration_seconds_count", **labels) == before + 1
    assert timing.upstream_seconds > 0


def test_measure_upstream_counts_a_call_that_raised(timing: RequestTiming) -> None:
    labels = {"dependency": "unit-test", "outcome": "error"}
    before = _sample("upstream_request_duration_seconds_count", **labels)
    with pytest.raises(RuntimeError), measure_upstream("unit-test"):
        raise RuntimeError("before any answer")
    assert _sample("upstream_request_duration_seconds_count", **labels) == before + 1
    spent = timing.upstream_seconds
    assert spent > 0
    with measure_upstream("unit-test") as call:
        call.outcome = "ok"
    assert timing.upstream_seconds > spent  # the request's share adds up over its calls


def test_measure_upstream_outside_a_request() -> None:
    """Background work (a payment follow-up) has no request timing: only the histogram."""
    assert _timing.get() is None
    labels = {"dependency": "unit-test", "outcome": "ok"}
    before = _sample("upstream_request_duration_seconds_count", **labels)
    with measure_upstream("unit-test") as call:
        call.outcome = "ok"
    assert _sample("upstream_request_duration_seconds_count", **labels) == before + 1
