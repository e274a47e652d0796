"""Shoppers checking whether a product is in stock at the supplier."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "StockChecker"]

# The supplier's feed lists the first 5,000 SKUs.
PRODUCTS = min(int(os.environ.get("LAB_SEED_ROWS", "10000")), 5000)


class StockChecker(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def availability(self) -> None:
        product_id = self.rnd.randint(1, PRODUCTS)
        self.client.get(
            f"/products/{product_id}/availability", name="/products/{product_id}/availability"
        )


USERS = [StockChecker]
