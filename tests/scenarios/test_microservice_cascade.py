"""microservice-cascade: orders in the shop's database, their stock in the inventory
service's, and a network between them that drops every answer for 2 s of every 6.

Faulty holds the order's transaction around the call and rolls back when the answer
is lost: the inventory keeps stock reserved for orders the shop does not have. Fixed
(transactional outbox, deadlines, idempotent retries, a relay) leaves the two
databases agreeing on every order.

Counted after each run in both databases directly (the shop's `orders` and
`order_items`, the inventory's `reservations` and `stock`), not from the app's
counters nor from the run's own audit, which the test holds to what it counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from faults import microservice_cascade
from tests.scenarios.contract import assert_symptoms, direct_database_url, run_variant

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

SLUG = "microservice-cascade"
STATUSES = (microservice_cascade.AWAITING, microservice_cascade.CONFIRMED,
            microservice_cascade.CANCELLED)  # fmt: skip


@dataclass(frozen=True)
class Books:
    """Both databases after a run: the shop's orders of this scenario (id -> status and
    lines) and the inventory's reservations (order id -> lines), its stock's total."""

    orders: dict[int, tuple[str, list[tuple[int, int]]]]
    reservations: dict[int, list[tuple[int, int]]]
    units_available: int
    products: int

    def with_status(self, status: str) -> set[int]:
        return {i for i, (s, _) in self.orders.items() if s == status}


def _books(shop_url: str) -> Books:
    inventory_url = shop_url.rsplit("/", 1)[0] + "/inventory"
    shop = create_engine(shop_url)
    try:
        with shop.connect() as conn:
            rows = conn.execute(
                text("SELECT o.id, o.status, i.product_id, i.quantity FROM orders o "
                     "JOIN order_items i ON i.order_id = o.id WHERE o.status IN (:a, :c, :x)"),
                dict(zip(("a", "c", "x"), STATUSES, strict=True)),
            ).all()  # fmt: skip
    finally:
        shop.dispose()
    orders: dict[int, tuple[str, list[tuple[int, int]]]] = {}
    for row in rows:
        orders.setdefault(int(row.id), (row.status, []))[1].append(
            (int(row.product_id), int(row.quantity))
        )
    inventory = create_engine(inventory_url)
    try:
        with inventory.connect() as conn:
            held = conn.execute(text("SELECT order_id, lines FROM reservations")).all()
            available, products = conn.execute(
                text("SELECT sum(available), count(*) FROM stock")
            ).one()
    finally:
        inventory.dispose()
    reservations = {
        int(r.order_id): sorted((int(x["product_id"]), int(x["quantity"])) for x in r.lines)
        for r in held
    }
    return Books(
        {i: (s, sorted(lines)) for i, (s, lines) in orders.items()},
        reservations,
        int(available),
        int(products),
    )


def _audit_of(summary: dict[str, Any], out: Path) -> dict[str, int]:
    path = out / summary["run_id"] / "audit.json"
    counts: dict[str, int] = json.loads(path.read_text())["counts"]
    return counts


def test_microservice_cascade_leaves_orphan_stock_and_the_outbox_settles_every_order(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres", "toxiproxy", "inventory")
    url = direct_database_url()
    # Each variant's `prepare` restocks the inventory and removes the last run's orders.
    # 20 s: three of the partition's windows (2 s of every 6), as many as the
    # default 30 s show to within one; CI's time is shared by 31 scenarios.
    faulty = run_variant(SLUG, False, tmp_path / "faulty", env, duration="20s")
    after_faulty = _books(url)
    fixed = run_variant(SLUG, True, tmp_path / "fixed", env, duration="20s")
    after_fixed = _books(url)
    assert_symptoms(SLUG, faulty, fixed)
    full = (
        after_fixed.products * microservice_cascade.STOCK_PER_PRODUCT
        - len(microservice_cascade.SOLD_OUT) * microservice_cascade.STOCK_PER_PRODUCT
    )

    # The partitions reached both variants: faulty answered 502s, fixed kept orders
    # it could not settle at once (202) and settled them later.
    assert faulty["responses_by_status"].get("502", 0) > 0, faulty["responses_by_status"]
    assert fixed["responses_by_status"].get("202", 0) > 0, fixed["responses_by_status"]
    assert "502" not in fixed["responses_by_status"], fixed["responses_by_status"]

    # Faulty: stock reserved for orders the shop rolled back, as both databases hold it.
    confirmed = after_faulty.with_status(microservice_cascade.CONFIRMED)
    orphans = set(after_faulty.reservations) - confirmed
    assert orphans, "the faulty variant left no reservation without its order"
    assert _audit_of(faulty, tmp_path / "faulty")["orphan_reservations"] == len(orphans)

    # Fixed: every order settled; each confirmed one holds exactly its lines, no
    # reservation without a confirmed order, the cancelled ones (sold out) hold none.
    books = after_fixed
    assert books.with_status(microservice_cascade.AWAITING) == set()
    confirmed = books.with_status(microservice_cascade.CONFIRMED)
    cancelled = books.with_status(microservice_cascade.CANCELLED)
    assert confirmed and cancelled, (len(confirmed), len(cancelled))
    assert set(books.reservations) == confirmed
    assert {i: books.orders[i][1] for i in confirmed} == {
        i: books.reservations[i] for i in confirmed
    }
    sold_out = set(microservice_cascade.SOLD_OUT)
    assert all(any(p in sold_out for p, _ in books.orders[i][1]) for i in cancelled)
    # Stock conservation in the inventory: what left the shelves is what is reserved.
    reserved_units = sum(q for lines in books.reservations.values() for _, q in lines)
    assert full - books.units_available == reserved_units
    assert _audit_of(fixed, tmp_path / "fixed")["inconsistent_orders"] == 0
