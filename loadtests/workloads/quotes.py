"""Shoppers asking for shipping quotes: a hundred distinct (product, zone) pairs.

The inputs must repeat many times within one bounded run, as they do in a shop
where a few products sell most: 20 products x 5 zones. The fixed variant pays
one route search per pair (100 x ~20 ms, about 2 s of a 12 s run) and then
answers from its cache; with a few hundred pairs its cold start filled most of
a short run and its p95 measured the warm-up, not the fix.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["PRODUCTS", "USERS", "ZONES", "QuoteSeeker"]

PRODUCTS, ZONES = 20, 5


class QuoteSeeker(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def quote(self) -> None:
        product, zone = self.rnd.randint(1, PRODUCTS), self.rnd.randint(1, ZONES)
        self.client.get(f"/quotes/{product}?zone={zone}", name="/quotes/{product_id}")


USERS = [QuoteSeeker]
