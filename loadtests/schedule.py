"""The open model's intended send times (loadtests/open_model.py), free of Locust and gevent."""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Callable

__all__ = ["Schedule", "processes_from_env", "rate_from_env"]


def rate_from_env() -> float | None:
    """LAB_RATE as a positive number, or None for the closed model."""
    raw = os.environ.get("LAB_RATE", "").strip()
    if not raw:
        return None
    rate = float(raw)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"LAB_RATE must be a positive number of requests per second, not {raw!r}")
    return rate


def processes_from_env() -> int:
    raw = os.environ.get("LAB_LOAD_PROCESSES", "").strip()
    processes = int(raw) if raw else 1
    if processes < 1:
        raise ValueError(f"LAB_LOAD_PROCESSES must be at least 1, not {raw!r}")
    return processes


class Schedule:
    """One process's slots: j / rate seconds after the epoch, for j = index (mod processes).

    The first slot taken is the first one at or after the clock's time then.
    Slots are handed out in order, each once; a slot given back (its user was
    stopped while waiting for it) is handed out again before any later one,
    so a shape that removes users does not drop requests from the schedule.
    """

    def __init__(
        self,
        rate: float,
        index: int = 0,
        processes: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if not 0 <= index < processes:
            raise ValueError(f"process index {index} is not within 0..{processes - 1}")
        self.rate = rate
        self.index = index
        self.processes = processes
        self._clock = clock
        self._next: int | None = None  # j of the next new slot
        self._given_back: list[int] = []  # a heap of j

    def take(self) -> float:
        """The next slot's time (epoch seconds): possibly in the past, if it is late."""
        if self._given_back:
            return heapq.heappop(self._given_back) / self.rate
        if self._next is None:
            first = math.ceil(self._clock() * self.rate)
            self._next = first + (self.index - first) % self.processes
        j = self._next
        self._next += self.processes
        return j / self.rate

    def give_back(self, slot: float) -> None:
        heapq.heappush(self._given_back, round(slot * self.rate))
