"""Customers following an order live, while the warehouse reports its changes.

Two kinds of user, half and half. A Visitor opens an order's live page and
closes it: a connect/disconnect cycle, what a registry must clean up after. A
Follower opens `WS /orders/{id}/live` and reads the greeting (the status now),
reports a change with `POST /orders/{id}/status`, waits up to UPDATE_WAIT_S for
that change on the socket, then closes the socket (a tab closed: no goodbye
message). Each step is a request in the run's records: `WS /orders/{id}/live`
(until the greeting), `POST /orders/{id}/status`, and `WS update`, whose time
runs from the POST's answer to the change's arrival, and which fails when the
change did not arrive.

Each connection and each POST is a new TCP connection (`Connection: close`),
as a load balancer spreads clients over servers: with gunicorn's workers
sharing one socket, either worker may take each.
"""

from __future__ import annotations

import json
import os
import random
import time

import websocket
from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Follower", "Visitor"]

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 10)  # target_app/seed.py
STATUSES = ("paid", "packed", "shipped", "delivered")
UPDATE_WAIT_S = float(os.environ.get("LAB_UPDATE_WAIT_S", "2"))
CLOSE = {"Connection": "close"}


def _url(host: str | None, order_id: int) -> str:
    return (host or "").replace("http", "ws", 1) + f"/orders/{order_id}/live"


class _Recording(FastHttpUser):
    abstract = True

    def _record(self, name: str, started: float, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=exception, context={},
        )  # fmt: skip


class Visitor(_Recording):
    """Opens an order's live page and closes it again: the connect/disconnect cycles."""

    wait_time = constant(float(os.environ.get("LAB_WAIT", "0.05")))

    @task
    def glance(self) -> None:
        started = time.perf_counter()
        try:
            url = _url(self.host, random.randint(1, ORDERS))
            socket = websocket.create_connection(url, timeout=10)
            socket.recv()
            socket.close()
        except Exception as exc:
            self._record("/orders/{id}/live", started, exc)
            return
        self._record("/orders/{id}/live", started)


class Follower(_Recording):
    """Follows an order while its status changes: the deliveries."""

    wait_time = constant(float(os.environ.get("LAB_WAIT", "0.1")))

    @task
    def follow_one_order(self) -> None:
        order_id = random.randint(1, ORDERS)
        url = _url(self.host, order_id)
        started = time.perf_counter()
        try:
            socket = websocket.create_connection(url, timeout=10)
            socket.recv()  # the greeting: the order's status now
        except Exception as exc:
            self._record("/orders/{id}/live", started, exc)
            return
        self._record("/orders/{id}/live", started)
        try:
            new = random.choice(STATUSES)
            with self.client.post(
                f"/orders/{order_id}/status", json={"status": new}, headers=CLOSE,
                name="/orders/{id}/status", catch_response=True,
            ) as response:  # fmt: skip
                if response.status_code != 200:
                    response.failure(f"{response.status_code}: {response.text[:200]}")
                    return
            self._wait_for(socket, order_id, new)
        finally:
            socket.close()

    def _wait_for(self, socket: websocket.WebSocket, order_id: int, new: str) -> None:
        """The change on the socket, or a failed `WS update` after UPDATE_WAIT_S."""
        posted = time.perf_counter()
        deadline = posted + UPDATE_WAIT_S
        while (left := deadline - time.perf_counter()) > 0:
            socket.settimeout(left)
            try:
                message = socket.recv()
            except websocket.WebSocketTimeoutException:
                break
            except Exception as exc:
                self._record("update", posted, exc)
                return
            # Another follower of the same order may have changed it meanwhile: wait for ours.
            if json.loads(message).get("status") == new:
                self._record("update", posted)
                return
        self._record("update", posted, TimeoutError(f"order {order_id}: no update in time"))


USERS = [Follower, Visitor]
