"""Managers refreshing the sales report."""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "ReportViewer"]


class ReportViewer(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    @task
    def sales(self) -> None:
        self.client.get("/reports/sales")


USERS = [ReportViewer]
