"""Shoppers asking for shipping quotes: a few hundred distinct (product, zone) pairs."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "QuoteSeeker"]


class QuoteSeeker(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def quote(self) -> None:
        product, zone = self.rnd.randint(1, 100), self.rnd.randint(1, 5)
        self.client.get(f"/quotes/{product}?zone={zone}", name="/quotes/{product_id}")


USERS = [QuoteSeeker]
