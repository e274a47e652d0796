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

import csv
import os
import random
import time
import uuid
from pathlib import Path
from typing import IO, Any

from locust import FastHttpUser, constant, events, task

from loadtests.request_log import process_log_path

__all__ = ["CHECKOUT_COLUMNS", "USERS", "Customer"]

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 10)
# How long a customer waits for a pending payment to resolve: longer than a
# follow-up against a 6 s provider takes (look-up, then charge: ~12 s).
POLL_FOR_S = float(os.environ.get("LAB_POLL_FOR_S", "30"))
CHECKOUT_COLUMNS = ("start", "order_id", "step", "status", "outcome", "polls", "seconds")


class _CheckoutLog:
    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._writer: Any = None
        request_log = os.environ.get("LAB_REQUEST_LOG")
        self._path = Path(request_log).with_name("checkouts.csv") if request_log else None
        if self._path is not None:
            # Opened at Locust's init, not at import: with --processes the workers are
            # forked after the import, and each must write a file of its own (a part,
            # merged into checkouts.csv after the run like requests.csv).
            events.init.add_listener(self.open)

    def open(self, runner: Any = None, **_: Any) -> None:
        assert self._path is not None
        where = process_log_path(self._path, runner)
        if where is None:
            return  # the master sends nothing
        # Closed when Locust quits, not by a with-block.
        self._file = where.open("w", newline="", buffering=1)
        self._writer = csv.writer(self._file)
        self._writer.writerow(CHECKOUT_COLUMNS)
        events.quit.add_listener(self.close)

    def write(self, *row: object) -> None:
        if self._writer is not None:
            try:
                self._writer.writerow(row)
            except (OSError, ValueError):  # a full disk or a closed file must not stop the load
                self._writer = None

    def close(self, **_: Any) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


_LOG = _CheckoutLog()


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
