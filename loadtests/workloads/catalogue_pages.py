"""Shoppers paging through a category: large list pages, read-only."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "CataloguePager"]

PRODUCTS = int(os.environ.get("LAB_SEED_ROWS", "10000"))
# A large list view: 150 products a page. The slicer scenario's SLO (p95 within 1 s
# on the degraded link) is about this page; at 250 rows even the columns a list shows
# take ~0.9 s of that link, and no query change could keep the SLO.
PAGE = 150


class CataloguePager(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def page(self) -> None:
        after = self.rnd.randint(0, max(PRODUCTS - PAGE, 0))
        self.client.get(f"/products?after_id={after}&limit={PAGE}", name=f"/products?limit={PAGE}")


USERS = [CataloguePager]
