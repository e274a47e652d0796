"""websocket-leak: live order status over WebSockets with 2 gunicorn workers; a registry
per worker that keeps every closed socket and never hears of the other worker's changes,
vs clean-up in `finally` and Redis pub/sub to every worker.

Measured from outside the seam: each update the load's clients did (not) receive on
their sockets (Locust's records), and the app's RSS over the connect/disconnect cycles
(the runner's sampler, from /proc).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

SLUG = "websocket-leak"
# memory-leak's requirement: memory that grows with the requests served is a leak.
LEAK_MB_PER_10K_REQUESTS = 10.0


def test_websocket_leak_misses_updates_across_workers_and_keeps_closed_sockets(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    faulty, fixed = prove(SLUG, tmp_path, lab_services("redis"))
    updates = "WS update"
    # Fixed: every change reached its follower, whichever worker each side was on.
    assert fixed["routes"][updates]["failures"] == 0, fixed["routes"][updates]
    assert fixed["error_rate"] == 0, fixed["error_rate"]
    # Faulty: the misses are the updates (connecting and posting worked).
    assert faulty["routes"][updates]["failures"] > 0, faulty["routes"][updates]
    # Every cycle closed its socket: the faulty workers keep each one, the fixed do not.
    assert faulty["rss_slope_mb_per_10k_requests"] > LEAK_MB_PER_10K_REQUESTS, faulty
    assert fixed["rss_slope_mb_per_10k_requests"] < LEAK_MB_PER_10K_REQUESTS, fixed
