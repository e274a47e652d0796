"""WS /orders/{id}/live and POST /orders/{id}/status in one process (the websocket-leak seam).

One process, so a change reaches a follower in either variant; what 2 workers do is
the contract test's (tests/scenarios/test_websocket_leak.py, with Redis). Starlette's
TestClient speaks WebSocket to the running app; the httpx client does the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from faults import websocket_leak
from tests.app.helpers import Lab, error_of

pytestmark = pytest.mark.unit

SLUG = "websocket-leak"


@pytest.fixture
def ws(fresh_lab: Lab) -> Iterator[TestClient]:
    """A WebSocket client of `fresh_lab`'s app (its lifespan already ran)."""
    yield TestClient(fresh_lab.app)


def test_a_follower_gets_the_status_then_each_change(fresh_lab: Lab, ws: TestClient) -> None:
    with fresh_lab.faulty(SLUG), ws.websocket_connect("/orders/3/live") as socket:
        greeting = socket.receive_json()
        assert greeting["order_id"] == 3 and greeting["status"] in {"pending", "paid", "shipped"}
        changed = fresh_lab.client.post("/orders/3/status", json={"status": "packed"})
        assert changed.status_code == 200 and changed.json() == {"order_id": 3, "status": "packed"}
        assert socket.receive_json() == {"order_id": 3, "status": "packed"}
        socket.send_text("bye")
    assert fresh_lab.client.get("/orders/3").json()["status"] == "packed"  # saved too


def test_the_faulty_registry_keeps_a_socket_closed_without_goodbye(
    fresh_lab: Lab, ws: TestClient
) -> None:
    with fresh_lab.faulty(SLUG):
        feed = fresh_lab.app.state.seams.pick(websocket_leak.SCENARIO)
        assert isinstance(feed, websocket_leak.LocalRegistry)
        with ws.websocket_connect("/orders/4/live") as socket:
            socket.receive_json()
            socket.send_text("bye")
        with ws.websocket_connect("/orders/4/live") as socket:
            socket.receive_json()  # and closed by leaving the block: no goodbye
        fresh_lab.client.post("/orders/4/status", json={"status": "paid"})  # a disconnect to see
        assert len(feed.sockets[4]) == 1  # the goodbye's socket was removed, this one kept


def test_an_unknown_order_closes_with_4404_and_no_redis_with_1013(
    lab: Lab, ws_shared: TestClient
) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        ws_shared.websocket_connect("/orders/999999/live") as s,
    ):
        s.receive_json()
    assert closed.value.code == 4404
    with (
        ws_shared.websocket_connect("/orders/1/live") as socket,  # the fixed variant
        pytest.raises(WebSocketDisconnect) as unavailable,
    ):
        socket.receive_json()  # no greeting: it could not promise the changes after it
    assert unavailable.value.code == 1013 and "REDIS_URL" in (unavailable.value.reason or "")


@pytest.fixture
def ws_shared(lab: Lab) -> TestClient:
    return TestClient(lab.app)


@pytest.mark.parametrize(
    ("order", "body", "code"),
    [(999_999, {"status": "paid"}, 404), (1, {"status": "lost"}, 422), (1, {}, 422)],
)
def test_a_bad_change_is_refused(lab: Lab, order: int, body: dict[str, str], code: int) -> None:
    with lab.faulty(SLUG):
        assert lab.client.post(f"/orders/{order}/status", json=body).status_code == code


def test_the_fixed_variant_without_redis_saves_the_change_and_says_503(fresh_lab: Lab) -> None:
    response = fresh_lab.client.post("/orders/5/status", json={"status": "shipped"})
    assert response.status_code == 503 and "REDIS_URL" in error_of(response)["message"]
    assert fresh_lab.client.get("/orders/5").json()["status"] == "shipped"
