"""/reports/sales: units and revenue per category (the orm-overhead seam's route)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from target_app.seed import CATEGORIES
from tests.app.helpers import N_ORDERS, Lab

pytestmark = pytest.mark.unit


def test_sales_by_category_add_up_the_order_lines(lab: Lab) -> None:
    response = lab.client.get("/reports/sales")
    assert response.status_code == 200
    report = response.json()
    assert report["newest_order"] == N_ORDERS
    # The report's window (orm-overhead's `window_orders`, 2,000) covers every seeded order.
    orders = lab.client.get("/orders", params={"limit": 100}).json()["orders"]
    units: defaultdict[str, int] = defaultdict(int)
    revenue: defaultdict[str, Decimal] = defaultdict(Decimal)
    for order in orders:
        for item, line in zip(order["items"], order["lines"], strict=True):
            category = line["product"].split(" ", 1)[0].lower()  # "<Category> item <id>"
            units[category] += item["quantity"]
            revenue[category] += Decimal(item["unit_price"]) * item["quantity"]
    assert report["categories"] == [
        {"category": c, "units": units[c], "revenue": str(revenue[c].quantize(Decimal("0.01")))}
        for c in sorted(units)
    ]
    assert [c["category"] for c in report["categories"]] == sorted(CATEGORIES)
