"""Payment webhooks in process: the inline receiver against the real fake provider.

The provider (upstream/app.py) runs in process behind Starlette's TestClient,
which is an `httpx.Client`: the route's sync provider client, pointed at it.
What was paid is read from the shop's own `payments` table. The fixed receiver
needs PostgreSQL and Redis (its inbox's ON CONFLICT, its queue): in process it
says so with a 503; tests/scenarios/test_sync_webhook.py proves it for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from target_app.models import Order, Payment
from tests.app.helpers import N_ORDERS, Lab, error_of, lab_settings, open_lab
from upstream.app import create_app as create_provider
from upstream.app import payment_event

pytestmark = pytest.mark.unit

EVENT = "evt_3_0123456789abcdef"


@pytest.fixture
def receiving(writable_db: Path, tmp_path: Path) -> Iterator[Lab]:
    settings = lab_settings(tmp_path / "lab", writable_db, upstream_url="http://provider.test")
    with open_lab(settings) as lab, TestClient(create_provider(), "http://provider.test") as p:
        lab.app.state.payment_provider.close()
        lab.app.state.payment_provider = p
        yield lab


def _payments(lab: Lab, ref: str) -> list[Payment]:
    with lab.app.state.db.sessions() as session:
        return list(session.scalars(select(Payment).where(Payment.provider_ref == ref)))


def _deliver(lab: Lab, event_id: str = EVENT) -> httpx.Response:
    return lab.client.post("/webhooks/payments",
                           json={"id": event_id, "type": "payment.captured"})  # fmt: skip


def test_the_inline_receiver_pays_the_order_as_the_provider_says_and_again_on_redelivery(
    receiving: Lab,
) -> None:
    lab = receiving
    lab.enable("sync-webhook")
    event = payment_event(EVENT)
    assert event is not None
    ref = str(event["data"]["payment_id"])
    first = _deliver(lab)
    assert (first.status_code, first.json()) == (200, {"status": "processed", "event_id": EVENT})
    (payment,) = _payments(lab, ref)
    assert (payment.order_id, str(payment.amount)) == (3, event["data"]["amount"])
    with lab.app.state.db.sessions() as session:
        order = session.get(Order, 3)
        assert order is not None and order.status == "paid"
    # The fault: a redelivery (providers deliver at least once) is paid again.
    assert _deliver(lab).status_code == 200
    assert len(_payments(lab, ref)) == 2


def test_an_event_the_provider_does_not_know_or_of_an_order_not_ours_is_refused(
    receiving: Lab,
) -> None:
    lab = receiving
    lab.enable("sync-webhook")
    response = _deliver(lab, f"evt_{N_ORDERS + 1000}_0123456789abcdef")
    assert response.status_code == 422 and "not ours" in error_of(response)["message"]
    with lab.app.state.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Payment)
                              .where(Payment.provider_ref.like("pay_evt_%"))) == 0  # fmt: skip


def test_a_malformed_delivery_is_a_422_naming_the_field(lab: Lab) -> None:
    response = lab.client.post("/webhooks/payments", json={"id": "evt_1", "type": "x"})
    assert response.status_code == 422
    fields = {tuple(d["loc"]) for d in error_of(response)["details"]}
    assert ("body", "id") in fields and ("body", "type") in fields


def test_the_queue_first_receiver_needs_postgres_and_redis_and_says_so(receiving: Lab) -> None:
    response = _deliver(receiving)  # fixed: the default
    assert response.status_code == 503
    message = error_of(response)["message"]
    assert "Redis" in message or "PostgreSQL" in message


def test_without_a_provider_configured_the_receiver_says_what_to_start(lab: Lab) -> None:
    response = _deliver(lab)
    assert response.status_code == 503 and "make up" in error_of(response)["message"]
