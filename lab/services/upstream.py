"""upstream: the fake third-party payment and inventory API (the `upstream` package).

One uvicorn process, one worker: its behaviour and its call counters live in
that process, so `PUT /_control` and `GET /_control/stats` see every call.
UPSTREAM_LATENCY_MS, UPSTREAM_JITTER_MS, UPSTREAM_FAILURE_RATE,
UPSTREAM_FAILURE_STATUS and UPSTREAM_SEED in `lab up`'s environment set its
behaviour at start-up.
"""

from __future__ import annotations

from lab.services._uvicorn import UvicornApp

__all__ = ["SERVICE", "Upstream"]

APP = "upstream.app:app"


class Upstream(UvicornApp):
    name = "upstream"
    rank = 30
    requires = ("toxiproxy",)
    app = APP
    link = "upstream"


SERVICE = Upstream()
