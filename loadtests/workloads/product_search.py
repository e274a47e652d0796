"""Shoppers searching products by exact name."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Searcher"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))
CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office"]


class Searcher(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def search(self) -> None:
        i = self.rnd.randint(1, PRODUCTS)
        name = f"{CATEGORIES[i % len(CATEGORIES)].title()} item {i}"
        self.client.get("/products/search", params={"name": name}, name="/products/search")


USERS = [Searcher]
