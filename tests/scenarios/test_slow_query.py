"""slow-query: the same statement, without and with the index of migration 0002."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.scenarios.contract import direct_database_url, prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_slow_query_index_shipped_as_a_migration(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    from faults.slow_query import prepare

    env = lab_services("postgres")
    faulty, fixed = prove("slow-query", tmp_path, env, duration="12s", users=10)
    assert faulty["db_queries_per_request"] == fixed["db_queries_per_request"] == 1
    assert faulty["p95_ms"] >= 5 * fixed["p95_ms"]

    # What the diagnosis page tells the user to look at, checked for real.
    url = direct_database_url()
    engine = create_engine(url)
    explain = text("EXPLAIN SELECT id FROM products WHERE name = 'Toys item 3'")
    try:
        prepare("faulty", url)  # migration 0002 downgraded: no index
        with engine.connect() as conn:
            plan = "\n".join(conn.scalars(explain))
            assert "Seq Scan on products" in plan, plan
            calls = conn.scalar(
                text(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                    "WHERE query LIKE '%FROM products%WHERE products.name = %'"
                )
            )
            assert calls and calls >= faulty["requests"], calls
        prepare("fixed", url)  # upgraded again: the index is back
        with engine.connect() as conn:
            plan = "\n".join(conn.scalars(explain))
            assert "ix_products_name" in plan, plan
    finally:
        engine.dispose()


# --- the migration itself: writes go on while the index builds ---------------------------

# The requirement of migration 0002, stated as a bound: no write to products waits for
# the index build. A write that does waits until the build commits, so the one issued
# as the build starts waits (nearly) all of it; half the build's duration tells the two
# apart whatever the machine's speed.
BLOCKED_SHARE_OF_BUILD = 0.5


WRITTEN_PREFIX = "WDB-"  # the sku of each row _writes_during writes (sku: 32 chars)


def _delete_written(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM products WHERE sku LIKE :p"),
                         {"p": WRITTEN_PREFIX + "%"})  # fmt: skip
    finally:
        engine.dispose()


def _writes_during(url: str, build: Callable[[], None]) -> tuple[float, float, int]:
    """Run `build()` while another connection inserts products in a loop (autocommit,
    one row per statement); (the build's duration, the longest write overlapping it,
    writes that overlapped it)."""
    import threading
    import time
    import uuid

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    prefix = f"{WRITTEN_PREFIX}{uuid.uuid4().hex[:8]}-"
    writes: list[tuple[float, float]] = []  # (start, end), perf_counter
    done = threading.Event()
    insert = text(
        "INSERT INTO products (sku, name, category, description, price, stock) "
        "VALUES (:sku, 'Written during the build', 'garden', '', 9.99, 1) RETURNING id"
    )
    first_id: list[int] = []

    def writer() -> None:
        with engine.connect() as conn:
            n = 0
            while not done.is_set():
                started = time.perf_counter()
                new_id = conn.execute(insert, {"sku": f"{prefix}{n}"}).scalar_one()
                writes.append((started, time.perf_counter()))
                if not first_id:
                    first_id.append(int(new_id))
                n += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # the writer is in its loop when the build starts
        begin = time.perf_counter()
        build()
        end = time.perf_counter()
    finally:
        done.set()
        thread.join(timeout=60)
    # Counted from the first id the writer got: a primary-key range, not a scan of the
    # 1,000,000 rows. They are deleted at the end of the test (_delete_written), once
    # the schema is at head again: a DELETE from products checks order_items for each
    # row, which below 0004 has no index on product_id (a scan per row: 20-70 s).
    with engine.connect() as conn:
        written = conn.scalar(
            text("SELECT count(*) FROM products WHERE id >= :lo AND sku LIKE :p"),
            {"lo": first_id[0] if first_id else 0, "p": prefix + "%"},
        )
    engine.dispose()
    assert written == len(writes)  # every write the loop timed is in the table
    during = [e - s for s, e in writes if e > begin and s < end]
    return end - begin, max(during, default=0.0), len(during)


def _index_valid(url: str, name: str) -> bool | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            valid: bool | None = conn.scalar(
                text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
                    "ON c.oid = i.indexrelid WHERE c.relname = :name"
                ),
                {"name": name},
            )
            return valid
    finally:
        engine.dispose()


def test_the_index_migration_does_not_block_writes(
    lab_services: Callable[..., dict[str, str]],
) -> None:
    from alembic import command

    from target_app.migrate import alembic_config
    from tests.conftest import SERVICES_SEED_ROWS

    lab_services("postgres")  # products: SERVICES_SEED_ROWS (1,000,000) rows
    url = direct_database_url()
    config = alembic_config(url)
    try:
        command.downgrade(config, "0001")  # 0002's downgrade: DROP INDEX CONCURRENTLY
        assert _index_valid(url, "ix_products_name") is None

        # The harness can fail: a plain CREATE INDEX (what 0002 did before) blocks writes.
        def plain() -> None:
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(text("CREATE INDEX ix_products_name_plain ON products (name)"))
            with engine.begin() as conn:
                conn.execute(text("DROP INDEX ix_products_name_plain"))
            engine.dispose()

        build_s, longest_s, _ = _writes_during(url, plain)
        assert longest_s >= BLOCKED_SHARE_OF_BUILD * build_s, (build_s, longest_s)
        print(f"plain CREATE INDEX: build {build_s:.2f} s, longest write {longest_s:.2f} s")

        # Migration 0002 on SERVICES_SEED_ROWS products, writes going on meanwhile.
        build_s, longest_s, overlapping = _writes_during(
            url, lambda: command.upgrade(config, "0002")
        )
        assert _index_valid(url, "ix_products_name") is True
        assert overlapping > 10, overlapping  # the writer really wrote during the build
        assert longest_s < BLOCKED_SHARE_OF_BUILD * build_s, (build_s, longest_s)
        print(f"0002 upgrade on {SERVICES_SEED_ROWS} rows: build {build_s:.2f} s, "
              f"longest write {longest_s * 1000:.0f} ms over {overlapping} writes")  # fmt: skip

        # Its downgrade (DROP INDEX CONCURRENTLY), with the writes going on: the index goes
        # and every timed write is in the table (_writes_during counts them).
        _writes_during(url, lambda: command.downgrade(config, "0001"))
        assert _index_valid(url, "ix_products_name") is None
    finally:
        command.upgrade(config, "head")
        _delete_written(url)
    assert _index_valid(url, "ix_products_name") is True
