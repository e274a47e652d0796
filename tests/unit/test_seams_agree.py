"""A fix must not change the answer: faulty and fixed seams return the same data."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from faults.cpu_bound import CachedQuotes, QuoteParams, RecomputedQuotes
from faults.db_latency import DashboardParams, FourRoundTrips, OneRoundTrip

pytestmark = pytest.mark.unit


def test_dashboard_one_round_trip_equals_four(seeded_db: str) -> None:
    engine = create_engine(seeded_db)
    params = DashboardParams()
    with engine.connect() as conn:
        for user_id in (1, 2, 3, 50, 10_000_000):
            assert OneRoundTrip(params).load(conn, user_id) == FourRoundTrips(params).load(
                conn, user_id
            )
    engine.dispose()


def test_cached_quote_equals_recomputed() -> None:
    params = QuoteParams(cache_entries=2)
    cached, recomputed = CachedQuotes(params), RecomputedQuotes(params)
    for product, zone in [(1, 1), (2, 3), (1, 1), (3, 2), (1, 1)]:
        assert cached.quote(product, zone) == recomputed.quote(product, zone)
    assert len(cached.cache) == 2  # bounded


def test_sales_report_sql_equals_python(seeded_db: str) -> None:
    from sqlalchemy.orm import Session

    from faults.orm_overhead import AggregateInPython, AggregateInSql, SalesParams

    engine = create_engine(seeded_db)
    params = SalesParams(window_orders=300)
    with Session(engine) as session:
        python = AggregateInPython(params).sales(session, 400)
        sql = AggregateInSql(params).sales(session, 400)
    engine.dispose()
    assert python and python == sql
