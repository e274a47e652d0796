"""/users: one user, and the dashboard (the db-latency seam's route)."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest

from tests.app.helpers import N_ORDERS, N_USERS, Lab, error_of

pytestmark = pytest.mark.unit


def _orders_by_user(lab: Lab) -> dict[int, list[dict[str, Any]]]:
    orders = lab.client.get("/orders", params={"limit": 100}).json()["orders"]
    assert len(orders) == N_ORDERS
    by_user: dict[int, list[dict[str, Any]]] = {}
    for order in orders:
        by_user.setdefault(order["user_id"], []).append(order)
    return by_user


def test_a_user(lab: Lab) -> None:
    response = lab.client.get("/users/1")
    assert response.status_code == 200
    assert response.json() == {
        "id": 1, "email": "user1@shop.test", "name": "User 1", "role": "admin",
    }  # fmt: skip
    assert lab.client.get("/users/2").json()["role"] == "customer"


@pytest.mark.parametrize("path", ["/users/{}", "/users/{}/dashboard"])
def test_missing_user_is_404(lab: Lab, path: str) -> None:
    response = lab.client.get(path.format(N_USERS + 1))
    assert response.status_code == 404
    assert error_of(response)["message"] == f"no user {N_USERS + 1}"


@pytest.mark.parametrize("path", ["/users/me", "/users/me/dashboard"])
def test_user_id_must_be_an_integer(lab: Lab, path: str) -> None:
    response = lab.client.get(path)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["path", "user_id"]


def test_dashboard_sums_the_users_orders(lab: Lab) -> None:
    by_user = _orders_by_user(lab)
    checked = 0
    for user_id in range(1, N_USERS + 1):
        response = lab.client.get(f"/users/{user_id}/dashboard")
        assert response.status_code == 200
        dashboard = response.json()
        orders = by_user.get(user_id, [])
        assert dashboard["id"] == user_id
        assert dashboard["name"] == f"User {user_id}"
        assert dashboard["email"] == f"user{user_id}@shop.test"
        assert dashboard["orders"] == len(orders)
        spent = sum((Decimal(o["total"]) for o in orders), Decimal("0.00"))
        assert dashboard["spent"] == str(spent)  # money, to the cent, as order totals are
        newest = sorted((o["id"] for o in orders), reverse=True)[:5]  # db-latency's `recent`
        assert dashboard["recent_order_ids"] == newest
        checked += bool(orders)
    assert checked >= N_USERS // 2  # most users have orders: the sums were really compared


def test_dashboard_of_a_user_without_orders(lab: Lab) -> None:
    by_user = _orders_by_user(lab)
    idle = next(u for u in range(1, N_USERS + 1) if u not in by_user)
    dashboard = lab.client.get(f"/users/{idle}/dashboard").json()
    assert dashboard["orders"] == 0
    assert Decimal(dashboard["spent"]) == 0
    assert dashboard["recent_order_ids"] == []


@pytest.mark.parametrize("variant", ["fixed", "faulty"])
def test_dashboard_spent_is_money_like_every_other_total(lab: Lab, variant: str) -> None:
    """On SQLite a raw sum is a float ('1623.8899999999999' for user 8): both variants
    answer it to the cent, as every total of the app is."""
    by_user = _orders_by_user(lab)
    with contextlib.ExitStack() as stack:
        if variant == "faulty":
            stack.enter_context(lab.faulty("db-latency"))
        for user_id, orders in sorted(by_user.items()):
            spent = sum((Decimal(o["total"]) for o in orders), Decimal("0.00"))
            dashboard = lab.client.get(f"/users/{user_id}/dashboard").json()
            assert dashboard["spent"] == str(spent), f"user {user_id}"
        idle = next(u for u in range(1, N_USERS + 1) if u not in by_user)
        assert lab.client.get(f"/users/{idle}/dashboard").json()["spent"] == "0.00"
