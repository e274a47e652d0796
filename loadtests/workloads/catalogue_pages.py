"""Shoppers paging through a category: large list pages, read-only."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "CataloguePager"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))


class CataloguePager(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def page(self) -> None:
        after = self.rnd.randint(0, max(PRODUCTS - 250, 0))
        self.client.get(f"/products?after_id={after}&limit=250", name="/products?limit=250")


USERS = [CataloguePager]
