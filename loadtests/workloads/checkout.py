"""Checkout: customers paying their orders. Drives the payment provider.

A payment the API answers `202 payment_pending` is followed as a real client
follows it: poll the status URL it gives (`Location`), no sooner than its
`Retry-After`, until the order is paid, for at most POLL_FOR_S.

Each checkout writes rows to `checkouts.csv` beside the run's `requests.csv`
(LAB_REQUEST_LOG): one as soon as paying answered (step `pay`, its status),
and one when a pending payment's polling ended (step `resolved`: `paid`, or
`pending` after POLL_FOR_S, or `failed`). It is the client's record of which
orders the shop accepted payment for, which the upstream contract test holds
against the provider's own ledger (every accepted order charged exactly once);
a checkout still polling when the load stops has its `pay` row.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

from locust import FastHttpUser, constant, task

from loadtests.side_log import SideLog

__all__ = ["CHECKOUT_COLUMNS", "USERS", "Customer"]

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 10)
# How long a customer waits for a pending payment to resolve: longer than a
# follow-up against a 6 s provider takes (look-up, then charge: ~12 s).
POLL_FOR_S = float(os.environ.get("LAB_POLL_FOR_S", "30"))
CHECKOUT_COLUMNS = ("start", "order_id", "step", "status", "outcome", "polls", "seconds")


_LOG = SideLog("checkouts.csv", CHECKOUT_COLUMNS)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return None if value is None else str(value)


def _retry_after(headers: Any) -> float:
    """The status URL's Retry-After (seconds), kept within 0.1 - 10 s."""
    try:
        return min(max(float(_header(headers, "Retry-After") or 1), 0.1), 10.0)
    except ValueError:
        return 1.0


class Customer(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    # A checkout may take the provider's 6 s: Locust must wait longer than that.
    network_timeout = 30.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def pay(self) -> None:
        order_id = self.rnd.randint(1, ORDERS)
        started = time.time()
        response = self.client.post(f"/orders/{order_id}/pay", name="/orders/{order_id}/pay")
        pay_status = response.status_code
        outcome = {200: "paid", 202: "pending"}.get(pay_status, "failed")
        _LOG.write(f"{started:.4f}", order_id, "pay", pay_status, outcome, 0,
                   f"{time.time() - started:.3f}")  # fmt: skip
        if pay_status == 202:
            polls, last = 0, pay_status
            location = _header(response.headers, "Location") or f"/orders/{order_id}/payment"
            wait = _retry_after(response.headers)
            while time.time() + wait - started < POLL_FOR_S:
                time.sleep(wait)
                polls += 1
                poll = self.client.get(location, name="/orders/{order_id}/payment")
                last = poll.status_code
                if poll.status_code == 200:
                    outcome = "paid"
                    break
                if poll.status_code != 202:
                    outcome = "failed"
                    break
                wait = _retry_after(poll.headers)
            _LOG.write(f"{started:.4f}", order_id, "resolved", last, outcome, polls,
                       f"{time.time() - started:.3f}")  # fmt: skip


USERS = [Customer]
