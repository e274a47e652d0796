"""A scheduler that triggers the product-snapshot ETL job, one job after another.

Each job covers the whole products table (LAB_ETL_ROWS to cap it) and fails
half-way through its first attempt (LAB_ETL_FAIL_AT), the same in both
variants: the failure is the environment, how the job copes is the code.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "EtlScheduler"]

ROWS = os.environ.get("LAB_ETL_ROWS", "")
FAIL_AT = os.environ.get("LAB_ETL_FAIL_AT", "0.5")


class EtlScheduler(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 600.0
    connection_timeout = 10.0

    @task
    def snapshot_products(self) -> None:
        params = {"fail_at": FAIL_AT, **({"limit": ROWS} if ROWS else {})}
        with self.client.post(
            "/etl/product-snapshots", params=params, name="/etl/product-snapshots",
            catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif response.json()["duplicate_rows"]:
                # The job "succeeded", but its target is wrong: that is a failure.
                response.failure(f"{response.json()['duplicate_rows']} duplicate rows")


USERS = [EtlScheduler]
