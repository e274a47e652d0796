"""GET and WS /logs/live in one process: the operator's token, the events, the resume.

The SSE stream never ends by itself, so these tests drive the app over ASGI in
the lab's event loop (through `Recording`, so the route coverage sees it) and
disconnect once they have what they wait for, as a browser tab that closes.
Lines are logged from the test's thread: the feed hands them to the app's loop.
The feed's handler sits on the process's root logger, which every `create_app`
sets up anew: the tests that wait for lines use an app of their own (`fresh_lab`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from faults import sse_logs
from tests.app.helpers import ROUTE_LOG, Lab, Recording, error_of

pytestmark = pytest.mark.unit

SLUG = "sse-logs"
log = logging.getLogger("target_app.test_logs")


def _stream(
    lab: Lab, headers: dict[str, str], ready: Callable[[], bool], lines: list[str],
    until: Callable[[bytes], bool],
) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
    """GET /logs/live until `until(body)`: `lines` logged once `ready()`, then a disconnect."""
    app = Recording(lab.app, ROUTE_LOG)
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/logs/live",
        "raw_path": b"/logs/live", "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000), "server": ("lab.test", 80),
    }  # fmt: skip
    state: dict[str, Any] = {"status": None, "headers": {}, "body": b""}

    async def drive() -> None:
        done = anyio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
                if message["status"] != 200:
                    done.set()
            elif message["type"] == "http.response.body":
                state["body"] += message.get("body", b"")
                if until(state["body"]):
                    done.set()

        with anyio.fail_after(10):
            await app(scope, receive, send)

    future = lab.client.portal.start_task_soon(drive)
    deadline = time.monotonic() + 5
    while not ready() and time.monotonic() < deadline and not future.done():
        time.sleep(0.01)
    for line in lines:
        log.warning(line)
    future.result(timeout=15)
    return state["status"], state["body"], state["headers"]


def _events(body: bytes) -> list[dict[str, str]]:
    out = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            out.append(fields)
    return out


def _feed(lab: Lab) -> Any:
    return lab.app.state.seams.pick(sse_logs.SCENARIO)


def test_the_live_log_needs_the_operators_token(lab: Lab) -> None:
    missing = lab.client.get("/logs/live")
    assert missing.status_code == 401 and "token" in error_of(missing)["message"]
    wrong = lab.client.get("/logs/live", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    bad_resume = lab.client.get("/logs/live", headers={**lab.auth, "Last-Event-ID": "yesterday"})
    assert bad_resume.status_code == 422
    assert any("last-event-id" in str(d).lower() for d in error_of(bad_resume)["details"])


def test_each_line_is_an_event_with_its_id_and_a_reconnect_resumes_after_it(
    fresh_lab: Lab,
) -> None:
    lab = fresh_lab
    feed = _feed(lab)
    marker = f"first-{time.monotonic_ns()}"
    status, body, headers = _stream(
        lab, lab.auth, lambda: bool(feed.followers), [marker, f"{marker}-2"],
        lambda b: b.count(marker.encode()) >= 2,
    )  # fmt: skip
    assert status == 200, body
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-accel-buffering"] == "no"  # a proxy must not hold the events back
    events = [e for e in _events(body) if marker in e.get("data", "")]
    assert [json.loads(e["data"])["msg"] for e in events] == [marker, f"{marker}-2"]
    assert int(events[1]["id"]) == int(events[0]["id"]) + 1
    assert not feed.followers  # the disconnect removed the client
    # The browser reconnects with the last id it saw: it gets the line after it.
    resumed_status, resumed, _ = _stream(
        lab, {**lab.auth, "Last-Event-ID": events[0]["id"]}, lambda: True, [],
        lambda b: f"{marker}-2".encode() in b,
    )  # fmt: skip
    assert resumed_status == 200
    replayed = [json.loads(e["data"])["msg"] for e in _events(resumed) if "data" in e]
    assert replayed[0] == f"{marker}-2"


def test_the_faulty_feed_streams_the_same_lines_from_its_list(fresh_lab: Lab) -> None:
    with fresh_lab.faulty(SLUG, poll_seconds=0.05):
        feed = _feed(fresh_lab)
        assert isinstance(feed, sse_logs.PolledList)
        marker = f"polled-{time.monotonic_ns()}"
        started = time.monotonic()
        status, body, _ = _stream(
            fresh_lab, fresh_lab.auth, lambda: time.monotonic() - started > 0.3, [marker],
            lambda b: marker.encode() in b,
        )  # fmt: skip
        assert status == 200
        (event,) = [e for e in _events(body) if marker in e.get("data", "")]
        # The same event as the pushed feed's: its id is the line's place in the list.
        assert feed.lines[int(event["id"]) - 1] == event["data"]


@pytest.fixture
def ws(fresh_lab: Lab) -> Iterator[TestClient]:
    yield TestClient(fresh_lab.app)


def test_the_websocket_carries_the_same_lines_and_refuses_a_wrong_token(
    fresh_lab: Lab, ws: TestClient
) -> None:
    lab = fresh_lab
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        ws.websocket_connect("/logs/live", headers={"Authorization": "Bearer nope"}) as socket,
    ):
        socket.receive_text()
    assert refused.value.code == 1008
    feed = _feed(lab)
    marker = f"ws-{time.monotonic_ns()}"
    with ws.websocket_connect("/logs/live", headers=lab.auth) as socket:
        deadline = time.monotonic() + 5
        while not feed.followers and time.monotonic() < deadline:
            time.sleep(0.01)
        log.warning(marker)
        message = json.loads(socket.receive_text().splitlines()[-1])
        assert message["line"]["msg"] == marker and message["id"] >= 1
    deadline = time.monotonic() + 5
    while feed.followers and time.monotonic() < deadline:  # the receive task saw it go
        time.sleep(0.01)
    assert not feed.followers
