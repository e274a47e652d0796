"""Bring a database to the head of the Alembic migrations, from code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from target_app.db import ensure_sqlite_dir

__all__ = ["alembic_config", "upgrade", "upgrade_and_empty"]

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
