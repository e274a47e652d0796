"""Checkout: customers paying their orders. Drives the payment provider."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Customer"]

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 10)


class Customer(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    # A checkout may take the provider's 6 s: Locust must wait longer than that.
    network_timeout = 30.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def pay(self) -> None:
        order_id = self.rnd.randint(1, ORDERS)
        self.client.post(f"/orders/{order_id}/pay", name="/orders/{order_id}/pay")


USERS = [Customer]
