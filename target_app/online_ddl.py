"""Index builds and drops that keep the table writable: the DDL the shop's migrations use.

On PostgreSQL a plain CREATE INDEX holds a SHARE lock on the table for the whole
build, so every INSERT, UPDATE and DELETE waits that long; CONCURRENTLY takes a
SHARE UPDATE EXCLUSIVE lock instead (writes go on; it scans the table twice and
waits for the transactions already running). It cannot run inside a
transaction: hence the autocommit block, which commits the migration's
transaction first. A build that fails (a deadlock, a cancel) leaves an INVALID
index behind, still maintained on every write but never used: it is dropped
before building again, so a rerun of the migration mends it.

A plain DROP INDEX takes an ACCESS EXCLUSIVE lock, which queues every read
behind any running query: downgrades drop CONCURRENTLY too. SQLite has neither
form nor the locks: plain statements there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

__all__ = ["create_index", "drop_index"]


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def create_index(name: str, table: str, columns: Sequence[str]) -> None:
    if not _postgresql():
        op.create_index(name, table, list(columns))
        return
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            text(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND NOT i.indisvalid"
            ),
            {"name": name},
        )
        if invalid:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.create_index(name, table, list(columns), postgresql_concurrently=True)


def drop_index(name: str, table: str) -> None:
    if not _postgresql():
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
