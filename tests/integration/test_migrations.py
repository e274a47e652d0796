"""Every migration goes up, down and up again on a real PostgreSQL, and the schema
after the round trip is the schema before it: a downgrade is code a rollback runs
(bad-deploy's gated procedure runs 0009's), so it is tested like the upgrade.

A scratch database of the test services' server: the shop's own holds the seeded
catalogue the scenario proofs use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from target_app.migrate import current_revision, downgrade, migrate_to, upgrade
from target_app.models import Product
from tests.scenarios.contract import direct_database_url

pytestmark = [pytest.mark.integration, pytest.mark.services]

SCRATCH = "migrations_round_trip"


@pytest.fixture
def scratch_url(lab_services: Callable[..., dict[str, str]]) -> Iterator[str]:
    lab_services("postgres")
    admin = create_engine(direct_database_url().rsplit("/", 1)[0] + "/postgres",
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {SCRATCH}"))
    try:
        yield direct_database_url().rsplit("/", 1)[0] + f"/{SCRATCH}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)"))
        admin.dispose()


def _schema(url: str) -> dict[str, Any]:
    """Tables, their columns (name, type, nullable) and indexes, as PostgreSQL has them
    (not Alembic's own alembic_version, which stays, empty, at base)."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {
            table: (
                sorted(
                    (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)
                ),
                sorted(str(i["name"]) for i in found.get_indexes(table)),
            )
            for table in sorted(found.get_table_names())
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    from target_app.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_every_migration_downgrades_to_the_schema_before_it(scratch_url: str) -> None:
    revisions = _revisions()
    assert revisions[0] == "0001" and len(revisions) >= 9, revisions
    before: dict[str, dict[str, Any]] = {"base": _schema(scratch_url)}
    for revision in revisions:
        upgrade(scratch_url, revision)
        before[revision] = _schema(scratch_url)
    # Down one at a time from head: each step leaves what its upgrade found.
    for previous, revision in reversed(list(zip(["base", *revisions], revisions, strict=False))):
        downgrade(scratch_url, previous)
        assert current_revision(scratch_url) == (None if previous == "base" else previous)
        assert _schema(scratch_url) == before[previous], f"{revision}'s downgrade"
    upgrade(scratch_url, "head")
    assert _schema(scratch_url) == before[revisions[-1]]


def test_the_release_migration_is_expand_only(scratch_url: str) -> None:
    """0009 adds a nullable column, no default: the live release's code, which does not
    know it, writes products on the new schema (a blue/green switch runs both)."""
    migrate_to(scratch_url, "0009")
    engine = create_engine(scratch_url)
    try:
        # The live release's own model, which has no such column, writes and reads.
        with Session(engine) as session:
            session.add(Product(sku="SKU-1", name="a", category="books", description="",
                                price=Decimal("1.00"), stock=1))  # fmt: skip
            session.commit()
            assert session.scalars(select(Product)).one().sku == "SKU-1"
        columns = {c["name"]: c for c in inspect(engine).get_columns("products")}
        assert columns["discontinued_at"]["nullable"] is True
        assert columns["discontinued_at"]["default"] is None
    finally:
        engine.dispose()
    migrate_to(scratch_url, "0008")  # the rollback's downgrade, with a row in the table
    assert "discontinued_at" not in {c["name"] for c in _columns(scratch_url, "products")}
    assert current_revision(scratch_url) == "0008"


def _columns(url: str, table: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        return list(inspect(engine).get_columns(table))
    finally:
        engine.dispose()
