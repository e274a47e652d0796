"""sse-logs: about 1,000 clients following the live log over SSE and WebSockets; a feed
that every client polls once a second vs one that pushes each line to every client.

Measured from outside the seam: the load's writers time, on their own streams, the
arrival of their own requests' access-log lines (Locust's records); the followers'
streams opened and stayed open for the whole run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faults.sse_logs import LIVE_MS, SCENARIO
from lab.bench.log_transports import WRITERS
from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]

SLUG = "sse-logs"
TRANSPORTS = ("SSE", "WS")
# The default load's users: WRITERS per transport, the rest followers split evenly.
OPENS_PER_TRANSPORT = (int(SCENARIO.default_load["users"]) - 2 * WRITERS) // 2 + WRITERS


def test_sse_logs_polled_lines_arrive_late_and_pushed_ones_live(
    tmp_path: Path, lab_home: Path
) -> None:
    faulty, fixed = prove(SLUG, tmp_path, {"LAB_HOME": str(lab_home)})
    for summary in (faulty, fixed):
        routes = summary["routes"]
        for transport in TRANSPORTS:
            opened = routes[f"{transport} /logs/live"]
            # Half the followers on each transport, and its writers: each opened once...
            assert opened["requests"] == OPENS_PER_TRANSPORT, (transport, opened)
            assert opened["failures"] == 0, (transport, opened)
            # ...and none of their streams broke while the load ran.
            assert routes.get(f"{transport} stream", {}).get("requests", 0) == 0, routes
    for transport in TRANSPORTS:
        line = f"{transport} log line"
        # Fixed: every line came, live (the requirement, LIVE_MS), on both transports.
        assert fixed["routes"][line]["failures"] == 0, fixed["routes"][line]
        assert fixed["routes"][line]["p50_ms"] < LIVE_MS, (line, fixed["routes"][line])
        # Faulty: a poll away, on both: the transport is not the cause.
        assert faulty["routes"][line]["p50_ms"] > LIVE_MS, (line, faulty["routes"][line])
