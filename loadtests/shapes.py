"""Load shapes: one `LoadTestShape` class each, one `tick()` each.

They read their size from the environment the lab sets (LoadTestShape takes no
arguments): LAB_USERS, LAB_SPAWN_RATE, LAB_DURATION (seconds). Every shape
returns None at LAB_DURATION, so a run always stops by itself.
"""

from __future__ import annotations

import os

from locust import LoadTestShape

__all__ = ["SHAPES", "ConstantShape", "SpikeShape", "StepShape"]


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class _Sized(LoadTestShape):
    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self.users = int(_env_float("LAB_USERS", 50))
        self.spawn_rate = _env_float("LAB_SPAWN_RATE", self.users)
        self.duration = _env_float("LAB_DURATION", 30)


class ConstantShape(_Sized):
    """All users from the start (spawned at LAB_SPAWN_RATE), held until the end."""

    def tick(self) -> tuple[int, float] | None:
        if self.get_run_time() >= self.duration:
            return None
        return self.users, self.spawn_rate


class StepShape(_Sized):
    """Five equal steps up to LAB_USERS: where does latency start to bend?"""

    steps = 5

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if run_time >= self.duration:
            return None
        step = min(int(run_time // (self.duration / self.steps)) + 1, self.steps)
        return max(self.users * step // self.steps, 1), self.spawn_rate


class SpikeShape(_Sized):
    """A fifth of the users, a spike to all of them in the middle fifth, then back."""

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if run_time >= self.duration:
            return None
        base = max(self.users // 5, 1)
        in_spike = 0.4 * self.duration <= run_time < 0.6 * self.duration
        return (self.users if in_spike else base), max(self.spawn_rate, self.users)


SHAPES: dict[str, type[LoadTestShape]] = {
    "constant": ConstantShape,
    "step": StepShape,
    "spike": SpikeShape,
}
