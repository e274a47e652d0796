"""Shoppers looking at the catalogue overview: one cached aggregate."""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "CatalogBrowser"]


class CatalogBrowser(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 30.0

    @task
    def stats(self) -> None:
        self.client.get("/catalog/stats")


USERS = [CatalogBrowser]
