"""A payment provider delivering webhooks to the shop (`POST /webhooks/payments`).

Each task is one new event, `evt_<order id>_<token>`, a captured payment of a
seeded order (the provider's API gives the event for that id: upstream/app.py,
`payment_event`). It is delivered as a provider delivers: at least once.

- **Timeouts and errors are retried.** A delivery that gets no 2xx within
  DELIVERY_TIMEOUT_S is delivered again after a backoff (1 s, then 2 s), at
  most ATTEMPTS times; a provider then gives up, and the event is lost to the
  shop unless it was applied anyway.
- **Some events are delivered twice on purpose.** DUPLICATE_SHARE of them are
  redelivered once after their first 2xx, as providers do (a lost ack on
  their side, a replay from their dashboard): the receiver must apply each
  event once however often it comes.

The first delivery is the scheduled request (open model: its latency counts
from its intended send time); redeliveries are named apart,
`/webhooks/payments (redelivery)`, so that the ack time of a burst is the first
deliveries'. `webhooks.csv` (beside requests.csv) is the sender's record: one
row per delivery, with the event, the attempt and what came back, which the
contract test holds against the shop's database.
"""

from __future__ import annotations

import os
import random
import time
import uuid

from locust import FastHttpUser, constant, task

from loadtests.side_log import SideLog

__all__ = [
    "ATTEMPTS", "DELIVERY_TIMEOUT_S", "DUPLICATE_SHARE", "USERS", "WEBHOOK_COLUMNS",
    "PaymentProvider",
]  # fmt: skip

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 10)
# A provider's delivery timeout (Stripe, GitHub: 10-30 s), scaled to the lab's
# short runs like its other waits: long enough for any healthy ack, short enough
# that a receiver which processes before it answers misses it under a burst.
DELIVERY_TIMEOUT_S = float(os.environ.get("LAB_WEBHOOK_TIMEOUT_S", "2"))
ATTEMPTS = 3
BACKOFF_S = (1.0, 2.0)
DUPLICATE_SHARE = 0.1
WEBHOOK_COLUMNS = ("start", "event_id", "attempt", "kind", "status", "seconds")
PATH = "/webhooks/payments"

_LOG = SideLog("webhooks.csv", WEBHOOK_COLUMNS)


class PaymentProvider(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = DELIVERY_TIMEOUT_S
    connection_timeout = DELIVERY_TIMEOUT_S

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    def _deliver(self, event_id: str, attempt: int, kind: str) -> bool:
        """One delivery; True on a 2xx (the provider's "delivered")."""
        started = time.time()
        name = PATH if kind == "first" else f"{PATH} (redelivery)"
        with self.client.post(
            PATH, json={"id": event_id, "type": "payment.captured"}, name=name,
            catch_response=True,
        ) as response:  # fmt: skip
            ok = bool(200 <= response.status_code < 300)
            if not ok:
                response.failure(f"{response.status_code or 'timeout'}")
        _LOG.write(f"{started:.4f}", event_id, attempt, kind, response.status_code,
                   f"{time.time() - started:.3f}")  # fmt: skip
        return ok

    @task
    def payment_captured(self) -> None:
        event_id = f"evt_{self.rnd.randint(1, ORDERS)}_{uuid.uuid4().hex[:16]}"
        delivered = self._deliver(event_id, 1, "first")
        attempt = 1
        while not delivered and attempt < ATTEMPTS:
            time.sleep(BACKOFF_S[attempt - 1])
            attempt += 1
            delivered = self._deliver(event_id, attempt, "retry")
        if delivered and self.rnd.random() < DUPLICATE_SHARE:
            time.sleep(self.rnd.uniform(0.2, 1.0))
            self._deliver(event_id, attempt + 1, "duplicate")


USERS = [PaymentProvider]
