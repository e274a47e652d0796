"""Readers of the catalogue: the first page, and page 49,000 (of 50,000).

Each request carries both a page number and a cursor for the same depth (from
`/products/pages/bookmark`): the OFFSET variant reads the number, the keyset
variant the cursor, so one workload measures both.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

__all__ = ["USERS", "PageReader"]

SIZE = 20
DEEP_PAGE = int(os.environ.get("LAB_DEEP_PAGE", "49000"))  # of the 50,000 pages of 20


class PageReader(FastHttpUser):
    wait_time = constant(float(os.environ.get("LAB_WAIT", "0")))
    network_timeout = 60.0

    def on_start(self) -> None:
        after = (DEEP_PAGE - 1) * SIZE
        response = self.client.get(
            f"/products/pages/bookmark?after_id={after}", name="/products/pages/bookmark"
        )
        self.deep_cursor = response.json()["cursor"]

    @task
    def first_page(self) -> None:
        self.client.get("/products/pages?page=1", name="/products/pages (first)")

    @task
    def deep_page(self) -> None:
        self.client.get(
            "/products/pages",
            params={"page": DEEP_PAGE, "cursor": self.deep_cursor},
            name="/products/pages (deep)",
        )


USERS = [PageReader]
