"""/catalog: the statistics (cached in Redis) and the bestsellers ranking."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.app.helpers import N_ORDERS, Lab, error_of

pytestmark = pytest.mark.unit


def test_stats_need_redis(lab: Lab) -> None:
    """Without REDIS_URL the route says what to start; its cache policy (redis-timeout)
    is tested against a real Redis in tests/scenarios/test_redis_timeout.py."""
    response = lab.client.get("/catalog/stats")
    assert response.status_code == 503
    assert error_of(response)["message"] == (
        "this route needs Redis and REDIS_URL is not set; start the lab's services with `make up`"
    )


def _units_sold(lab: Lab) -> Counter[int]:
    orders = lab.client.get("/orders", params={"limit": 100}).json()["orders"]
    assert len(orders) == N_ORDERS
    units: Counter[int] = Counter()
    for order in orders:
        for item in order["items"]:
            units[item["product_id"]] += item["quantity"]
    return units


def _score(units: int) -> float:
    return round(sum(units / float((1 + day * 0.05) ** 1.5) for day in range(1, 200)), 3)


def test_bestsellers_rank_the_units_sold(lab: Lab) -> None:
    """Without Redis the ranking is computed on every request (no-cache's fixed variant
    falls back to computing, uncached): the answer is the ranking all the same."""
    response = lab.client.get("/catalog/bestsellers")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    ranking = response.json()
    sold = _units_sold(lab)
    assert len(ranking) == min(50, len(sold))
    for entry in ranking:
        assert entry["units"] == sold[entry["product_id"]]
        assert entry["score"] == _score(entry["units"])
    scores = [entry["score"] for entry in ranking]
    assert scores == sorted(scores, reverse=True)
    # The top 50 by units; among equal units, which products make the cut is the database's.
    expected_units = sorted(sold.values(), reverse=True)[: len(ranking)]
    assert [entry["units"] for entry in ranking] == expected_units
