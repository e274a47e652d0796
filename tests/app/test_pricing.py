"""/pricing/bands: the price bands of the "shop by price" filter (the performance-testing seam)."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from faults import performance_testing
from target_app.db import Database
from tests.app.helpers import ROWS, Lab, error_of, lab_settings

pytestmark = pytest.mark.unit


def expected_bands(database: Path) -> dict[str, dict[str, Any]]:
    """The bands computed again, from SQL (not the ORM), with the same definitions."""
    with sqlite3.connect(database) as conn:
        products = conn.execute("SELECT id, category, price, stock FROM products").fetchall()
        sold = dict(
            conn.execute("SELECT product_id, SUM(quantity) FROM order_items GROUP BY product_id")
        )
    bands: dict[str, dict[str, Any]] = {}
    for category in sorted({row[1] for row in products}):
        rows = [row for row in products if row[1] == category]
        prices = sorted(Decimal(str(row[2])).quantize(Decimal("0.01")) for row in rows)
        cents = Decimal("0.01")
        bands[category] = {
            "products": len(rows),
            "in_stock": sum(row[3] > 0 for row in rows),
            "min": str(prices[0]),
            "median": str(statistics.median(prices).quantize(cents)),
            "p90": str(statistics.quantiles(prices, n=10, method="inclusive")[-1].quantize(cents)),
            "max": str(prices[-1]),
            "units_sold": sum(sold.get(row[0], 0) for row in rows),
        }
    return bands


def _database_file(lab: Lab) -> Path:
    return Path(lab.settings.database_url.removeprefix("sqlite:///"))


def test_the_bands_are_the_catalogues(lab: Lab) -> None:
    response = lab.client.get("/pricing/bands")
    assert response.status_code == 200, response.text
    assert int(response.headers["age"]) >= 0
    bands = response.json()["categories"]
    assert bands == expected_bands(_database_file(lab))
    assert sum(band["products"] for band in bands.values()) == ROWS
    one = lab.client.get("/pricing/bands", params={"category": "toys"})
    assert one.status_code == 200
    assert one.json() == {"categories": {"toys": bands["toys"]}}


def test_both_variants_serve_the_same_bands(lab: Lab) -> None:
    def fetch() -> list[tuple[int, Any]]:
        answers = []
        for params in ({}, {"category": "garden"}, {"category": "nothing"}):
            response = lab.client.get("/pricing/bands", params=params)
            body = response.json()
            if not response.is_success:
                body = {
                    key: value for key, value in error_of(response).items() if key != "request_id"
                }
            answers.append((response.status_code, body))
        return answers

    fixed = fetch()
    with lab.faulty("performance-testing", max_age_seconds=60):
        faulty = fetch()
    assert [status for status, _ in fixed] == [200, 200, 404]
    assert faulty == fixed


@pytest.mark.parametrize("category", ["", "x" * 61])
def test_a_category_is_bounded(lab: Lab, category: str) -> None:
    response = lab.client.get("/pricing/bands", params={"category": category})
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["query", "category"]


def test_an_unknown_category_is_a_404(lab: Lab) -> None:
    response = lab.client.get("/pricing/bands", params={"category": "shoes"})
    assert response.status_code == 404
    assert error_of(response)["message"] == "no category 'shoes'"


def test_the_fixed_cache_serves_stale_bands_while_it_rebuilds(
    writable_db: Path, tmp_path: Path
) -> None:
    """Stale-while-revalidate, on the app's real database: after the max age, the next
    request gets the old bands at once and starts one rebuild; the one after it, the new."""
    database = Database(lab_settings(tmp_path, writable_db))
    params = performance_testing.PriceBandParams(max_age_seconds=0.05)
    cache = performance_testing.BackgroundRefresh(params)

    async def scenario() -> None:
        first = await cache.current(database)  # cold: waits for the first build
        with sqlite3.connect(writable_db) as conn:
            conn.execute("UPDATE products SET stock = 0 WHERE category = 'toys'")
        await asyncio.sleep(0.1)
        stale = await cache.current(database)
        assert stale is first  # expired, served anyway, no wait
        rebuild = cache._rebuild
        assert rebuild is not None  # the stale request started one
        again = await cache.current(database)
        assert again is first and cache._rebuild is rebuild  # one in flight, not one each
        async with asyncio.timeout(30):  # a rebuild that never ends fails, not hangs
            while (fresh := await cache.current(database)) is first:
                await asyncio.sleep(0.01)
        assert fresh.bands["toys"]["in_stock"] == 0
        assert first.bands["toys"]["in_stock"] > 0

    try:
        asyncio.run(scenario())
    finally:
        cache.close()
        database.dispose()
