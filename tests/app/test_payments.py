"""Paying an order against the fake provider, in process: paid, pending, followed up.

The app's upstream client is pointed at the real fake provider (upstream/app.py)
through httpx's ASGITransport, so the provider's own records (its ledger of
charges by idempotency key) say what was charged, not the app.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.app.helpers import N_ORDERS, Lab, lab_settings, open_lab
from upstream.app import Behaviour
from upstream.app import create_app as create_provider

pytestmark = pytest.mark.unit


class Provider:
    """The fake provider, and a synchronous client on its control plane (via the lab's loop)."""

    def __init__(self, lab: Lab, app: FastAPI) -> None:
        self.lab = lab
        self.app = app
        client = lab.app.state.upstream
        client.http = httpx.AsyncClient(
            base_url="http://provider.test", transport=httpx.ASGITransport(app=app)
        )
        self._http = client.http

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        portal = self.lab.client._portal
        response: httpx.Response = portal.call(lambda: self._http.request(method, path, **kwargs))
        return response

    def behave(self, **change: Any) -> None:
        assert self.request("PUT", "/_control", json=change).status_code == 200

    def ledger(self) -> dict[str, Any]:
        body: dict[str, Any] = self.request("GET", "/_control/charges").json()
        return body


@pytest.fixture
def paying(writable_db: Path, tmp_path: Path) -> Iterator[tuple[Lab, Provider]]:
    settings = lab_settings(tmp_path / "lab", writable_db, upstream_url="http://provider.test")
    with open_lab(settings) as lab:
        yield lab, Provider(lab, create_provider(Behaviour()))


def charges_of(ledger: dict[str, Any], order_id: int) -> list[dict[str, Any]]:
    return [c for c in ledger["charges"] if c["order_id"] == order_id]


def test_paying_charges_the_order_once_however_often_it_is_paid(
    paying: tuple[Lab, Provider],
) -> None:
    lab, provider = paying
    first = lab.client.post("/orders/3/pay")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "paid"
    again = lab.client.post("/orders/3/pay")
    assert again.status_code == 200
    assert again.json()["payment"]["replayed"] is True
    assert again.json()["payment"]["id"] == first.json()["payment"]["id"]
    ledger = provider.ledger()
    (charge,) = charges_of(ledger, 3)
    assert charge["requests"] == 2
    assert charge["idempotency_key"].startswith("order-3-")
    assert ledger["orders_charged_more_than_once"] == {}
    # The status URL finds it at the provider by its key.
    status = lab.client.get("/orders/3/payment")
    assert status.status_code == 200
    assert status.json()["payment"]["id"] == charge["id"]


def test_a_refused_charge_is_a_502(paying: tuple[Lab, Provider]) -> None:
    lab, provider = paying
    provider.behave(failure_rate=1.0, failure_status=400)
    response = lab.client.post("/orders/4/pay")
    assert response.status_code == 502
    assert provider.ledger()["total"] == 0


def test_a_pending_payment_is_followed_up_and_charged_exactly_once(
    paying: tuple[Lab, Provider],
) -> None:
    lab, provider = paying
    provider.behave(failure_rate=1.0, failure_status=503, seed=1)
    # The provider is down: retries fail, then the circuit opens (15 failures).
    for order_id in (5, 6, 7):
        assert lab.client.post(f"/orders/{order_id}/pay").status_code == 502
    metrics = lab.client.get("/metrics").text
    assert 'circuit_breaker_state{dependency="payments"} 2.0' in metrics
    pending = lab.client.post("/orders/8/pay")
    assert pending.status_code == 202, pending.text
    body = pending.json()
    assert body["status"] == "payment_pending"
    assert body["status_url"] == "/orders/8/payment" == pending.headers["Location"]
    assert pending.headers["Retry-After"] == "1"
    # Nothing reached the provider for order 8: the open circuit failed it fast.
    assert charges_of(provider.ledger(), 8) == []
    still = lab.client.get("/orders/8/payment")
    assert still.status_code == 202
    assert still.headers["Location"] == "/orders/8/payment"

    provider.behave(failure_rate=0.0)  # the provider is back
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = lab.client.get("/orders/8/payment")
        if status.status_code == 200:
            break
        time.sleep(0.2)
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "paid"
    (charge,) = charges_of(provider.ledger(), 8)
    assert status.json()["payment"]["id"] == charge["id"]
    # Paying it again is the same charge, not a second one.
    assert lab.client.post("/orders/8/pay").status_code in (200, 202)
    assert len(charges_of(provider.ledger(), 8)) == 1
    assert provider.ledger()["orders_charged_more_than_once"] == {}


@pytest.mark.parametrize("path", ["/orders/{id}/pay", "/orders/{id}/payment"])
def test_an_unknown_order_is_404(paying: tuple[Lab, Provider], path: str) -> None:
    lab, _ = paying
    method = "POST" if path.endswith("/pay") else "GET"
    response = lab.client.request(method, path.format(id=N_ORDERS + 1))
    assert response.status_code == 404


def test_the_status_url_needs_the_upstream_api(lab: Lab) -> None:
    response = lab.client.get("/orders/1/payment")
    assert response.status_code == 503


@pytest.mark.parametrize("order_id", ["0", "x", str(2**31)])
def test_the_status_url_refuses_a_bad_order_id(paying: tuple[Lab, Provider], order_id: str) -> None:
    lab, _ = paying
    assert lab.client.get(f"/orders/{order_id}/payment").status_code == 422


def test_a_payment_past_the_deadline_is_pending_then_charged_once(
    paying: tuple[Lab, Provider],
) -> None:
    """upstream-slow's fixed variant: the 2 s deadline answers 202; the follow-up,
    which has no such budget, takes the provider's time and charges the order."""
    lab, provider = paying
    provider.behave(latency_ms=2100)
    started = time.monotonic()
    pending = lab.client.post("/orders/9/pay")
    assert pending.status_code == 202, pending.text
    assert time.monotonic() - started < 2.5  # the deadline, not the provider's 2.1 s
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = lab.client.get("/orders/9/payment")
        if status.status_code == 200:
            break
        time.sleep(0.5)
    assert status.status_code == 200, status.text
    assert len(charges_of(provider.ledger(), 9)) == 1
