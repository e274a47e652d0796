"""The cheapest route there is: measures the load driver, not the app."""

from __future__ import annotations

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "HealthzPoller"]


class HealthzPoller(FastHttpUser):
    wait_time = constant(0)

    @task
    def healthz(self) -> None:
        self.client.get("/healthz")


USERS = [HealthzPoller]
