"""Signed-in customers opening their dashboard: a read of several widgets."""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "DashboardReader"]

USERS_IN_DB = max(int(os.environ.get("LAB_SEED_ROWS", "10000")) // 10, 10)


class DashboardReader(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task
    def dashboard(self) -> None:
        user_id = self.rnd.randint(1, USERS_IN_DB)
        self.client.get(f"/users/{user_id}/dashboard", name="/users/{user_id}/dashboard")


USERS = [DashboardReader]
