"""Back-office staff scrolling the order feed."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "FeedReader"]

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 40)


class FeedReader(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def feed(self) -> None:
        before = self.rnd.randint(21, ORDERS)
        self.client.get(f"/orders?before_id={before}&limit=20", name="/orders?limit=20")


USERS = [FeedReader]
