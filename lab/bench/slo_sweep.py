"""performance-testing's throughput at its SLO: the rate stepped until p99 breaks it.

"Throughput" from a run only says the app kept up with what was sent. The
number a capacity plan needs is the highest rate at which the requirement
still holds: here, 99% of `GET /pricing/bands` answered within 100 ms
(faults.performance_testing.SLO_P99_MS), errors within that 1%. Each step is an
open-model run of the fixed variant (latency from each request's intended
send time, so a saturated app cannot hide by slowing the load); the sweep
doubles the rate until a step misses the SLO, and the page of the scenario
shows the table (lab/commands/scenarios.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.measurements import (
    DEFAULT_FILE,
    MeasurementFile,
    SweepMeasurement,
    machine_now,
    sweep_markdown,
)
from lab.runner import RunOptions
from lab.runner import run as run_variant

__all__ = ["RATES", "SLUG", "markdown", "meets", "run"]

SLUG = "performance-testing"
RATES = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)  # requests/s, doubling
STEP_S = 15.0
# Errors are not answers: the SLO's 1% budget covers them too.
MAX_ERROR_RATE = 0.01


def meets(summary: dict[str, Any], slo_p99_ms: float) -> bool:
    """Whether one step's run met the SLO (its summary.json)."""
    p99, errors = summary.get("p99_ms"), summary.get("error_rate") or 0.0
    return isinstance(p99, int | float) and p99 <= slo_p99_ms and errors <= MAX_ERROR_RATE


def _per_second(count: Any, seconds: float) -> float | None:
    return count / seconds if isinstance(count, int | float) else None


def run(
    where: Path,
    out: Path,
    rates: Sequence[float] = RATES,
    progress: Callable[[str], None] = lambda _description: None,
    committed: Path | None = DEFAULT_FILE,
) -> dict[str, Any]:
    """Each rate of `rates` in turn until one misses the SLO; as bench.json's part."""
    from faults.performance_testing import SLO_P99_MS

    points: list[dict[str, Any]] = []
    quiet = Console(file=io.StringIO())
    for rate in rates:
        progress(f"{SLUG} fixed at {rate:g} requests/s")
        result = run_variant(
            RunOptions(SLUG, fixed=True, rate=rate, duration_s=STEP_S, out=out), quiet
        )
        if result.status == "interrupted":
            raise KeyboardInterrupt
        summary = result.summary
        points.append({
            # Sent over the schedule's length, not the load window's (which also holds
            # Locust's start-up and shut-down).
            "rate": rate, "rps": _per_second(summary.get("requests"), STEP_S),
            "p99_ms": summary.get("p99_ms"),
            "error_rate": summary.get("error_rate"), "status": result.status,
            "meets": result.status == "completed" and meets(summary, SLO_P99_MS),
            "run": str(result.run_dir),
        })  # fmt: skip
        if not points[-1]["meets"]:
            break
    measured = SweepMeasurement(
        slug=SLUG, variant="fixed", slo_p99_ms=SLO_P99_MS, step_s=STEP_S, points=tuple(points),
        provenance=machine_now("bench (rate sweep)", str(where)),
    )  # fmt: skip
    if committed is not None:
        stored = MeasurementFile.load(committed)
        stored.sweeps[SLUG] = measured
        stored.save()
    return measured.as_dict()


def markdown(part: dict[str, Any]) -> list[str]:
    """bench.md's table of the part `run` returned (the page shows the same)."""
    return sweep_markdown(SweepMeasurement.from_dict(SLUG, part))
