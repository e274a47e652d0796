"""The lab's network topology: one place for every service's name, port and link.

The app reaches Postgres, Redis, upstream and the inventory service only through Toxiproxy, so any
link can be degraded. Each link has a *direct* address (the real service) and
a *proxy* address (Toxiproxy's listener in front of it). Native services (`lab
up`), docker-compose.yml, the Prometheus config and the tests all read this
module; a port changes here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "APP_PORT",
    "GRAFANA_PORT",
    "LINKS",
    "PROMETHEUS_PORT",
    "TOXIPROXY_API_PORT",
    "Link",
    "app_settings_env",
]

HOST = "127.0.0.1"
# Shifts every fixed port, so a test suite can run its own services beside a
# developer's `lab up` (the tests use LAB_PORT_OFFSET=1000).
OFFSET = int(os.environ.get("LAB_PORT_OFFSET", "0"))


@dataclass(frozen=True)
class Link:
    name: str  # the Toxiproxy proxy name
    direct_port: int  # the real service
    proxy_port: int  # Toxiproxy's listener in front of it

    @property
    def direct(self) -> str:
        return f"{HOST}:{self.direct_port}"

    @property
    def proxy(self) -> str:
        return f"{HOST}:{self.proxy_port}"


LINKS: dict[str, Link] = {
    "postgres": Link("postgres", direct_port=15432 + OFFSET, proxy_port=15532 + OFFSET),
    "redis": Link("redis", direct_port=16379 + OFFSET, proxy_port=16479 + OFFSET),
    "upstream": Link("upstream", direct_port=18081 + OFFSET, proxy_port=18181 + OFFSET),
    # The lab's second service (inventory/app.py): what the shop's orders reserve stock in.
    "inventory": Link("inventory", direct_port=18082 + OFFSET, proxy_port=18182 + OFFSET),
}

# Below the kernel's ephemeral range (32768-60999), so no outgoing socket takes them.
TOXIPROXY_API_PORT = 18474 + OFFSET
PROMETHEUS_PORT = 19090 + OFFSET
GRAFANA_PORT = 3000  # docker compose only
APP_PORT = 8000  # `lab serve`; `lab run` picks a free port and tells Prometheus

POSTGRES_USER = "lab"
POSTGRES_DB = "shop"


def app_settings_env() -> dict[str, str]:
    """The app's settings when the lab's services run: proxy and direct address of each link."""
    pg, redis, upstream = LINKS["postgres"], LINKS["redis"], LINKS["upstream"]
    inventory = LINKS["inventory"]
    return {
        "DATABASE_URL": f"postgresql+psycopg://{POSTGRES_USER}@{pg.proxy}/{POSTGRES_DB}",
        "DATABASE_DIRECT_URL": f"postgresql+psycopg://{POSTGRES_USER}@{pg.direct}/{POSTGRES_DB}",
        "REDIS_URL": f"redis://{redis.proxy}/0",
        "REDIS_DIRECT_URL": f"redis://{redis.direct}/0",
        "UPSTREAM_URL": f"http://{upstream.proxy}",
        "UPSTREAM_DIRECT_URL": f"http://{upstream.direct}",
        "INVENTORY_URL": f"http://{inventory.proxy}",
        "INVENTORY_DIRECT_URL": f"http://{inventory.direct}",
        "TOXIPROXY_URL": f"http://{HOST}:{TOXIPROXY_API_PORT}",
    }
