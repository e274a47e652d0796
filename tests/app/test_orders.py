"""/orders: the feed, one order, its invoice, placing an order, paying it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.app.helpers import N_ORDERS, N_USERS, ROWS, Lab, error_of, lab_settings, open_lab

pytestmark = pytest.mark.unit


def _all_orders(lab: Lab) -> list[dict[str, Any]]:
    body = lab.client.get("/orders", params={"limit": 100}).json()
    orders: list[dict[str, Any]] = body["orders"]
    assert len(orders) == N_ORDERS
    return orders


# --- GET /orders ----------------------------------------------------------------


def test_feed_is_newest_first_with_customer_and_lines(lab: Lab) -> None:
    response = lab.client.get("/orders")
    assert response.status_code == 200
    body = response.json()
    ids = [order["id"] for order in body["orders"]]
    assert ids == list(range(N_ORDERS, N_ORDERS - 20, -1))
    assert body["next_before_id"] == N_ORDERS - 19
    for order in body["orders"]:
        assert order["customer"] == f"User {order['user_id']}"
        assert order["status"] in {"pending", "paid", "shipped"}
        assert [line["quantity"] for line in order["lines"]] == [
            item["quantity"] for item in order["items"]
        ]
        # A line names its product: "<Category> item <id>" (target_app/seed.py).
        assert [line["product"].rsplit(" ", 1)[1] for line in order["lines"]] == [
            str(item["product_id"]) for item in order["items"]
        ]


def test_feed_pages_with_before_id(lab: Lab) -> None:
    body = lab.client.get("/orders", params={"before_id": 41, "limit": 5}).json()
    assert [order["id"] for order in body["orders"]] == [40, 39, 38, 37, 36]
    assert body["next_before_id"] == 36
    oldest = lab.client.get("/orders", params={"before_id": 1}).json()
    assert oldest == {"orders": [], "next_before_id": None}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"before_id": 0}])
def test_feed_refuses_bad_paging(lab: Lab, params: dict[str, int]) -> None:
    response = lab.client.get("/orders", params=params)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["query", next(iter(params))]


# --- GET /orders/{order_id}, /orders/{order_id}/invoice ---------------------------


def test_one_order_is_the_feeds_entry(lab: Lab) -> None:
    in_feed = next(o for o in _all_orders(lab) if o["id"] == 17)
    response = lab.client.get("/orders/17")
    assert response.status_code == 200
    order = response.json()
    assert order == {k: in_feed[k] for k in ("id", "user_id", "status", "total", "items")}


def test_invoice_is_the_order_with_its_number(lab: Lab) -> None:
    order = lab.client.get("/orders/9").json()
    response = lab.client.get("/orders/9/invoice")
    assert response.status_code == 200
    assert response.json() == order | {"invoice": "INV-00000009"}


@pytest.mark.parametrize("path", ["/orders/{}", "/orders/{}/invoice"])
def test_missing_order_is_404(lab: Lab, path: str) -> None:
    response = lab.client.get(path.format(N_ORDERS + 1))
    assert response.status_code == 404
    assert error_of(response)["message"] == f"no order {N_ORDERS + 1}"


@pytest.mark.parametrize("path", ["/orders/abc", "/orders/abc/invoice", "/orders/1.5"])
def test_order_id_must_be_an_integer(lab: Lab, path: str) -> None:
    response = lab.client.get(path)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["path", "order_id"]


# --- POST /orders (writes: a fresh database) -------------------------------------


def test_placing_an_order_prices_it_from_the_catalogue(fresh_lab: Lab) -> None:
    lab = fresh_lab
    prices = {pid: Decimal(lab.client.get(f"/products/{pid}").json()["price"]) for pid in (3, 250)}
    payload = {
        "user_id": 4,
        "items": [{"product_id": 3, "quantity": 2}, {"product_id": 250, "quantity": 1}],
    }
    response = lab.client.post("/orders", json=payload)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["id"] == N_ORDERS + 1
    assert order["user_id"] == 4
    assert order["status"] == "pending"
    assert Decimal(order["total"]) == prices[3] * 2 + prices[250]
    assert order["items"] == [
        {"product_id": 3, "quantity": 2, "unit_price": str(prices[3])},
        {"product_id": 250, "quantity": 1, "unit_price": str(prices[250])},
    ]
    # It is stored: readable on its own, and at the top of the feed.
    assert lab.client.get(f"/orders/{order['id']}").json() == order
    feed = lab.client.get("/orders", params={"limit": 1}).json()
    assert feed["orders"][0]["id"] == order["id"]
    assert feed["orders"][0]["customer"] == "User 4"


def test_an_order_for_an_unknown_user_is_404(fresh_lab: Lab) -> None:
    payload = {"user_id": N_USERS + 1, "items": [{"product_id": 1, "quantity": 1}]}
    response = fresh_lab.client.post("/orders", json=payload)
    assert response.status_code == 404
    assert error_of(response)["message"] == f"no user {N_USERS + 1}"


def test_an_order_for_unknown_products_names_them_all(fresh_lab: Lab) -> None:
    lines = [{"product_id": pid, "quantity": 1} for pid in (ROWS + 7, 1, ROWS + 2)]
    response = fresh_lab.client.post("/orders", json={"user_id": 1, "items": lines})
    assert response.status_code == 404
    assert error_of(response)["message"] == f"no product {ROWS + 2}, {ROWS + 7}"
    # Nothing was written.
    assert fresh_lab.client.get(f"/orders/{N_ORDERS + 1}").status_code == 404


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"items": [{"product_id": 1, "quantity": 1}]}, ["body", "user_id"]),
        ({"user_id": 0, "items": [{"product_id": 1, "quantity": 1}]}, ["body", "user_id"]),
        ({"user_id": 1, "items": []}, ["body", "items"]),
        ({"user_id": 1, "items": [{"product_id": 1, "quantity": 1}] * 51}, ["body", "items"]),
        (
            {"user_id": 1, "items": [{"product_id": 1, "quantity": 0}]},
            ["body", "items", 0, "quantity"],
        ),
        (
            {"user_id": 1, "items": [{"product_id": 1, "quantity": 101}]},
            ["body", "items", 0, "quantity"],
        ),
        (
            {"user_id": 1, "items": [{"product_id": -1, "quantity": 1}]},
            ["body", "items", 0, "product_id"],
        ),
    ],
)
def test_an_invalid_order_is_422(lab: Lab, payload: dict[str, Any], where: list[Any]) -> None:
    response = lab.client.post("/orders", json=payload)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == where


def test_an_order_needs_a_json_body(lab: Lab) -> None:
    response = lab.client.post(
        "/orders", content=b"user_id=1", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 422


# --- POST /orders/{order_id}/pay ---------------------------------------------------


def test_paying_needs_the_upstream_api(lab: Lab) -> None:
    """Without UPSTREAM_URL the route says what to start; the provider's behaviour
    (deadline, retries, idempotency) is tested in tests/scenarios/test_upstream.py."""
    response = lab.client.post("/orders/1/pay")
    assert response.status_code == 503
    assert error_of(response)["message"] == (
        "this route needs the upstream API and UPSTREAM_URL is not set; start the lab's "
        "services with `make up`"
    )


def test_a_placement_without_the_inventory_service_says_how_to_get_one(lab: Lab) -> None:
    """Placing an order needs the inventory service (INVENTORY_URL, `make up`); with none
    configured the answer says so, in the app's error envelope, and keeps no order."""
    before = lab.client.get("/orders", params={"limit": 1}).json()["orders"][0]["id"]
    order = {"user_id": 1, "items": [{"product_id": 5, "quantity": 1}]}
    response = lab.client.post("/orders/placements", json=order)
    assert response.status_code == 503
    assert "INVENTORY_URL" in error_of(response)["message"]
    assert lab.client.get("/orders", params={"limit": 1}).json()["orders"][0]["id"] == before


@pytest.fixture
def unreachable_inventory(writable_db: Path, tmp_path: Path) -> Iterator[Lab]:
    """An app whose inventory service is configured but not there: nothing listens on
    the discard port, so every call is refused by the kernel."""
    settings = lab_settings(tmp_path / "lab", writable_db, inventory_url="http://127.0.0.1:9")
    with open_lab(settings) as lab:
        yield lab


@pytest.mark.parametrize(
    "order",
    [
        {"user_id": 1, "items": []},
        {"user_id": 1, "items": [{"product_id": 5, "quantity": 0}]},
        {"user_id": 0, "items": [{"product_id": 5, "quantity": 1}]},
    ],
)
def test_a_placement_refuses_an_order_it_cannot_place(
    unreachable_inventory: Lab, order: dict[str, Any]
) -> None:
    response = unreachable_inventory.client.post("/orders/placements", json=order)
    assert response.status_code == 422


def test_a_placement_of_an_unknown_product_is_a_404(unreachable_inventory: Lab) -> None:
    order = {"user_id": 1, "items": [{"product_id": ROWS + 1, "quantity": 1}]}
    response = unreachable_inventory.client.post("/orders/placements", json=order)
    assert response.status_code == 404 and str(ROWS + 1) in error_of(response)["message"]


def _placed(lab: Lab) -> list[tuple[int, str]]:
    url = lab.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(url) as db:
        return db.execute(
            "SELECT o.id, o.status FROM orders o WHERE o.status IN "
            "('awaiting_stock', 'confirmed', 'cancelled') ORDER BY o.id"
        ).fetchall()


def test_with_the_inventory_gone_faulty_keeps_nothing_and_fixed_keeps_the_order(
    unreachable_inventory: Lab,
) -> None:
    """The inventory refuses every connection. The faulty placement rolls its order
    back (502); the fixed one keeps it with its outbox message (202, `awaiting_stock`,
    its URL), for the relay to settle once the inventory is back."""
    lab = unreachable_inventory
    order = {"user_id": 1, "items": [{"product_id": 5, "quantity": 2}]}
    with lab.faulty("microservice-cascade"):
        response = lab.client.post("/orders/placements", json=order)
    assert response.status_code == 502
    assert "inventory" in error_of(response)["message"]
    assert _placed(lab) == []
    response = lab.client.post("/orders/placements", json=order)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "awaiting_stock" and body["status_url"] == f"/orders/{body['id']}"
    assert _placed(lab) == [(body["id"], "awaiting_stock")]
    url = lab.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(url) as db:
        messages = db.execute("SELECT order_id, topic FROM outbox_messages").fetchall()
    assert messages == [(body["id"], "reserve_stock")]
    assert lab.client.get(body["status_url"]).json()["status"] == "awaiting_stock"
