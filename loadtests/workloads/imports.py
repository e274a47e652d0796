"""A supplier feed importer: batches of 5,000 new products, three of them bad.

The bad rows sit near the end of each batch (as a truncated last line or a
late price typo would), so that an import that stops at the first one has
still paid for thousands of rows: its throughput is measured, not its refusal.
"""

from __future__ import annotations

import os
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "FeedImporter"]

BATCH = int(os.environ.get("LAB_IMPORT_BATCH", "5000"))
BAD = {BATCH - 50, BATCH - 30, BATCH - 10}


class FeedImporter(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 300.0

    @task
    def import_batch(self) -> None:
        prefix = uuid.uuid4().hex[:12]
        rows = [
            {"sku": f"I{prefix}{i:06d}", "name": f"Imported item {i}", "category": "garden",
             "description": "from the supplier feed", "price": -1 if i in BAD else 9.99,
             "stock": 5}
            for i in range(BATCH)
        ]  # fmt: skip
        with self.client.post(
            "/imports/products", json=rows, name="/imports/products", catch_response=True
        ) as response:
            # A stopped import (422) is the symptom, not a transport failure: count it
            # as a failure so error_rate shows it, with the server's reason.
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:200]}")


USERS = [FeedImporter]
