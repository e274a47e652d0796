"""A slow route next to a cheap one: does the cheap one suffer?"""

from __future__ import annotations

import os
import random
import uuid

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "RecommendationsAndHealth"]


class RecommendationsAndHealth(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task(1)
    def recommendations(self) -> None:
        user = self.rnd.randint(1, 1000)
        self.client.get(f"/recommendations/{user}", name="/recommendations/{user_id}")

    @task(1)
    def healthz(self) -> None:
        self.client.get("/healthz")


USERS = [RecommendationsAndHealth]
