"""slow-query: the same statement, without and with the index of migration 0002."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_slow_query_index_shipped_as_a_migration(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    from faults.slow_query import prepare
    from lab.topology import LINKS
    from tests.conftest import OFFSET

    env = lab_services("postgres")
    faulty, fixed = prove("slow-query", tmp_path, env, duration="12s", users=10)
    assert faulty["db_queries_per_request"] == fixed["db_queries_per_request"] == 1
    assert faulty["p95_ms"] >= 5 * fixed["p95_ms"]

    # What the diagnosis page tells the user to look at, checked for real.
    url = f"postgresql+psycopg://lab@127.0.0.1:{LINKS['postgres'].direct_port + int(OFFSET)}/shop"
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
