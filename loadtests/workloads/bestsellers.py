"""Many shoppers opening the home page's bestseller list at once."""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "HomePageVisitor"]


class HomePageVisitor(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    @task
    def bestsellers(self) -> None:
        self.client.get("/catalog/bestsellers")


USERS = [HomePageVisitor]
