"""A dependency taken down in the middle of a run, and brought back.

What a circuit breaker is for shows only then: before the outage it must stay
closed, during it callers must be refused fast, after it the breaker must close
again. The outage runs beside a run (another process, or a thread beside
`lab.runner.run`), on the real Toxiproxy: a disabled proxy refuses new
connections and closes open ones, which is what a provider that went away
looks like from the app.

Used by upstream-flaky's outage proof (tests/scenarios/test_upstream_outage.py)
and by `lab bench --part outage`, which reports the refused calls' p99 against
the issue's 10 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from lab.errors import LabError
from lab.services import toxiproxy

__all__ = ["SETTLE_S", "Outage", "OutageWindow", "window_latencies"]


# Left out of each window: its first second (the retries under the scenario's
# toxic, just reset; then the failures that open the circuit).
SETTLE_S = 1.0


@dataclass(frozen=True)
class OutageWindow:
    """Epoch seconds: when the link was reset (the healthy window starts), went down, came back."""

    healthy_from: float
    down: float
    up: float

    def split(
        self, latencies: pd.DataFrame, name: str
    ) -> tuple[pd.Series[float], pd.Series[float]]:
        """The latencies (ms) of requests `name` meant for the healthy window, then for
        the outage, each from SETTLE_S in (`latencies`: reports.latency.request_latencies')."""
        return (
            window_latencies(latencies, name, self.healthy_from + SETTLE_S, self.down),
            window_latencies(latencies, name, self.down + SETTLE_S, self.up),
        )


@dataclass(frozen=True)
class Outage:
    link: str  # a Toxiproxy proxy (lab.topology.LINKS)
    before_s: float  # the link healthy (every toxic off) before it goes down
    for_s: float  # how long it stays down
    api: str | None = None  # the Toxiproxy API; None: the lab's

    def during(
        self, ready: Callable[[], bool], alive: Callable[[], bool], timeout_s: float = 120.0
    ) -> OutageWindow:
        """Once `ready()` (the load has reached the dependency), the outage; returns its window.

        The scenario's own toxics go first: before and after the outage the link
        is simply up, so that a failure then is the breaker's, not the network's.
        The link is enabled again however this ends (Ctrl-C included). A run that
        ends first (`alive()` false: interrupted, failed) ends the outage with it,
        rather than taking the link down after the run undid its network.
        """
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not alive():
                raise LabError(f"the run ended before its load reached {self.link}")
            if time.monotonic() > deadline:
                raise LabError(f"the load did not reach {self.link} within {timeout_s:.0f} s")
            time.sleep(0.2)
        toxiproxy.reset(self.api)
        healthy_from = time.time()
        if not _wait(self.before_s, alive):
            raise LabError(f"the run ended before {self.link} was taken down")
        down = time.time()
        toxiproxy.set_enabled(self.link, False, self.api)
        try:
            _wait(self.for_s, alive)
        finally:
            toxiproxy.set_enabled(self.link, True, self.api)
        return OutageWindow(healthy_from, down, time.time())


def _wait(seconds: float, alive: Callable[[], bool]) -> bool:
    """Sleep `seconds`, or less if the run ends meanwhile; whether it lasted."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if not alive():
            return False
        time.sleep(min(left, 0.1))
    return True


def window_latencies(
    latencies: pd.DataFrame, name: str, start: float, end: float
) -> pd.Series[float]:
    """The latencies (ms) of requests `name` whose time (`at`: an open run's intended
    send time) falls in [start, end); `latencies` is reports.latency.request_latencies'."""
    rows = latencies[(latencies["name"] == name) & (latencies["at"] >= start)]
    return rows[rows["at"] < end]["ms"]
