"""The shop browser: what a storefront's traffic looks like, weighted.

Each simulated user has its own session id, as a browser would, and walks
product lists and pages, with the occasional order. Requests are named by
route so Locust's table lines up with the app's `route` label.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "ShopBrowser"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))
USERS_IN_DB = max(PRODUCTS // 10, 10)
CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office"]


class ShopBrowser(FastHttpUser):
    # No think time: closed-loop load that finds the app's capacity. Set
    # LAB_WAIT (seconds) for a gentler one, or LAB_RATE for the open model
    # (loadtests/open_model.py), which paces every workload on its own.
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))

    def on_start(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.rnd = random.Random(self.session_id)

    @task(8)
    def product_page(self) -> None:
        product_id = self.rnd.randint(1, PRODUCTS)
        currency = self.rnd.choice(["USD", "USD", "EUR", "GBP"])
        self.client.get(
            f"/products/{product_id}?currency={currency}",
            headers={"X-Session-Id": self.session_id},
            name="/products/{product_id}",
        )

    @task(3)
    def browse_category(self) -> None:
        category = self.rnd.choice(CATEGORIES)
        after = self.rnd.randint(0, PRODUCTS - 100)
        self.client.get(
            f"/products?category={category}&after_id={after}&limit=20", name="/products"
        )

    @task(1)
    def user_profile(self) -> None:
        self.client.get(f"/users/{self.rnd.randint(1, USERS_IN_DB)}", name="/users/{user_id}")

    @task(1)
    def place_order(self) -> None:
        items = [
            {"product_id": self.rnd.randint(1, PRODUCTS), "quantity": self.rnd.randint(1, 3)}
            for _ in range(self.rnd.randint(1, 3))
        ]
        self.client.post(
            "/orders",
            json={"user_id": self.rnd.randint(1, USERS_IN_DB), "items": items},
            name="/orders",
        )


USERS = [ShopBrowser]
