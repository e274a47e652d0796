"""Operators starting product-snapshot jobs through the job API (`POST /etl/jobs`).

Each job covers the first LAB_JOB_ROWS products (100,000: about 2 s of work
here). A 202 (queued) and a 200 (run in the request) are both a started job;
what the client waits for its answer is the story.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "JobSubmitter"]

ROWS = os.environ.get("LAB_JOB_ROWS", "100000")


class JobSubmitter(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 600.0
    connection_timeout = 10.0

    @task
    def submit(self) -> None:
        with self.client.post(
            "/etl/jobs", params={"limit": ROWS}, name="/etl/jobs", catch_response=True
        ) as response:
            if response.status_code not in (200, 202):
                response.failure(f"{response.status_code}: {response.text[:200]}")


USERS = [JobSubmitter]
