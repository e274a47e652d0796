"""The Alembic migrations, from code: to head, to a revision and back, and where it is."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from target_app.db import ensure_sqlite_dir

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "migrate_to",
    "upgrade",
    "upgrade_and_empty",
]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is interpolation syntax for configparser; a password may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def migrate_to(database_url: str, revision: str) -> None:
    """Up or down to `revision`, as Alembic orders the revisions (not by their names)."""
    from alembic.script import ScriptDirectory

    before = current_revision(database_url)
    if before == revision:
        return
    script = ScriptDirectory.from_config(alembic_config(database_url))
    below_target = {r.revision for r in script.iterate_revisions(revision, "base")}
    if before is None or before in below_target:
        upgrade(database_url, revision)
    else:
        downgrade(database_url, revision)


def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision; None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade_and_empty(database_url: str, *tables: str) -> None:
    """The schema at head and these tables empty, their ids restarted: how a
    scenario's `prepare` starts each variant from nothing (PostgreSQL)."""
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))
    finally:
        engine.dispose()
