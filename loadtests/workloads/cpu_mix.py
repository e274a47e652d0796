"""A CPU-heavy storefront: product pages, category lists, and shipping quotes
for inputs that rarely repeat (so no cache saves the work). Each request costs
the app milliseconds of CPU and Locust a fraction of that: the app is the
bottleneck, which is what a worker-count comparison needs."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "CpuHeavyShopper"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))
CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office"]


class CpuHeavyShopper(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task(6)
    def product_page(self) -> None:
        product_id = self.rnd.randint(1, PRODUCTS)
        self.client.get(f"/products/{product_id}", name="/products/{product_id}")

    @task(2)
    def browse_category(self) -> None:
        category = self.rnd.choice(CATEGORIES)
        after = self.rnd.randint(0, PRODUCTS - 100)
        self.client.get(
            f"/products?category={category}&after_id={after}&limit=50", name="/products"
        )

    @task(2)
    def shipping_quote(self) -> None:
        product_id, zone = self.rnd.randint(1, PRODUCTS), self.rnd.randint(1, 10)
        self.client.get(f"/quotes/{product_id}?zone={zone}", name="/quotes/{product_id}")


USERS = [CpuHeavyShopper]
