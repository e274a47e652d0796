"""One route only: the product page, the shop's busiest. Used by `lab bench`."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "ProductPageReader"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))


class ProductPageReader(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.session_id = uuid.uuid4().hex
        self.rnd = random.Random(self.session_id)

    @task
    def product_page(self) -> None:
        self.client.get(
            f"/products/{self.rnd.randint(1, PRODUCTS)}",
            headers={"X-Session-Id": self.session_id},
            name="/products/{product_id}",
        )


USERS = [ProductPageReader]
