"""Placements: customers ordering products whose stock the inventory service reserves.

Each customer places an order of one to three products every half second or so
(`POST /orders/placements`). One order in twenty asks for a product the
inventory has sold out (faults/microservice_cascade.py SOLD_OUT): the inventory
refuses it in both variants, and the shop must answer 409 without keeping it.

An order kept while its stock is being reserved (202) is accepted: the shop has
the order, and says where to follow it. A failed order (502) is tried once more,
as a person presses the button again, and that second try is a new order.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, between, task

__all__ = ["USERS", "Customer"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))
CUSTOMERS = max(PRODUCTS // 10, 10)
# faults/microservice_cascade.py SOLD_OUT (a workload imports no scenario).
SOLD_OUT = (1, 2, 3)
NAME = "/orders/placements"


class Customer(FastHttpUser):
    wait_time = between(0.2, 0.8)
    # A faulty placement waits out a partition (2 s here; httpx's default deadline is 5 s).
    network_timeout = 30.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    def _order(self) -> dict[str, object]:
        products = self.rnd.sample(range(len(SOLD_OUT) + 1, PRODUCTS + 1), self.rnd.randint(1, 3))
        if self.rnd.random() < 0.05:
            products[0] = self.rnd.choice(SOLD_OUT)
        return {
            "user_id": self.rnd.randint(1, CUSTOMERS),
            "items": [{"product_id": p, "quantity": self.rnd.randint(1, 3)} for p in products],
        }

    def _place(self, order: dict[str, object]) -> int:
        with self.client.post(NAME, json=order, name=NAME, catch_response=True) as response:
            if response.status_code in (201, 202):
                response.success()
            elif response.status_code == 409:
                response.success()  # out of stock: an answer, not a failure
            else:
                response.failure(f"{response.status_code}")
            return int(response.status_code)

    @task
    def place(self) -> None:
        order = self._order()
        if self._place(order) == 502:
            self._place(order)


USERS = [Customer]
