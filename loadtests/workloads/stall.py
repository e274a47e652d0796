"""Shoppers using the "shop by price" filter: the price bands, all of them or one category's.

The route is a dict lookup between rebuilds of its cache, so any latency above a
few ms is the rebuild (faults/performance_testing.py). Run it open (`--rate`) to
measure each request from when it was due; closed, a user stuck in a rebuild
sends nothing meanwhile.

Before the users start, one unmeasured request warms the app (`_warm_up`): it
builds the cache (a worker's first request has nothing to serve and waits for
the build, in either variant) and has FastAPI compile the routes it walks past
(FastAPI 0.165 builds an included router's routes on the first request that
reaches them, ~0.2 s on this machine). A benchmark measures the steady state it
is about, here the periodic rebuild, not a cold start.
"""

from __future__ import annotations

import logging
import os
import random
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, constant, constant_pacing, events, task

__all__ = ["CATEGORIES", "USERS", "PriceFilterUser"]

# The seeded shop's categories (target_app/seed.py); not imported, so Locust's
# processes never load the app's modules.
CATEGORIES = ("books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office")


def _wait_time() -> Callable[[Any], float]:
    """LAB_PACING (seconds): each user starts a task at most that often, Locust's
    `constant_pacing`: a closed run at a chosen throughput (users / pacing), to set
    beside an open run at the same rate. Else LAB_WAIT, think time after each answer."""
    pacing = os.environ.get("LAB_PACING", "").strip()
    if pacing:
        return constant_pacing(float(pacing))
    return constant(float(os.environ.get("LAB_WAIT", "0")))


class PriceFilterUser(FastHttpUser):
    wait_time = _wait_time()
    network_timeout = 60.0

    def on_start(self) -> None:
        self.rnd = random.Random(uuid.uuid4().hex)

    @task(3)
    def all_bands(self) -> None:
        self.client.get("/pricing/bands")

    @task(1)
    def one_category(self) -> None:
        category = self.rnd.choice(CATEGORIES)
        self.client.get(f"/pricing/bands?category={category}", name="/pricing/bands?category")


USERS = [PriceFilterUser]

# A cold build of the lab's largest shop (1M products) takes tens of seconds.
WARM_UP_TIMEOUT_S = 120.0


@events.init.add_listener
def _warm_up(environment: Any, **_: Any) -> None:
    """One request through urllib, not Locust's client, so that no statistic or
    requests.csv row counts it; at `init`, before the load shape's clock starts."""
    if not environment.host:
        return
    try:
        with urllib.request.urlopen(f"{environment.host}/pricing/bands", timeout=WARM_UP_TIMEOUT_S):
            pass
    except OSError as exc:  # the run goes on, cold: its first second will show it
        logging.getLogger("lab.load").warning("warm-up request failed: %s", exc)
