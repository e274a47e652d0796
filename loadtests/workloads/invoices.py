"""Customers downloading their invoices: one short read per request."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "InvoiceReader"]

ORDERS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 5, 10)


class InvoiceReader(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def invoice(self) -> None:
        order_id = self.rnd.randint(1, ORDERS)
        self.client.get(f"/orders/{order_id}/invoice", name="/orders/{order_id}/invoice")


USERS = [InvoiceReader]
