"""The shop's browsers behind a reverse proxy: bad-deploy's traffic.

The shop workload's users, retrying as a browser does: an idempotent request whose
kept-alive connection the server closed under it is sent once more (RFC 9110
9.2.2; geventhttpclient retries only idempotent methods). An nginx reload closes
its old workers' idle connections, and a request can cross that close on the
wire; a browser never shows that as an error, so the lab's users do not either.
An order (POST) is not retried: if one is lost that way, the run counts it.
"""

from __future__ import annotations

from loadtests.workloads import shop

__all__ = ["USERS", "StorefrontBrowser"]


class StorefrontBrowser(shop.ShopBrowser):
    max_retries = 1


USERS = [StorefrontBrowser]
