"""A few integrations pulling the full order export, over and over."""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "Exporter"]


class Exporter(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 120.0

    @task
    def export(self) -> None:
        self.client.get("/export/orders")


USERS = [Exporter]
