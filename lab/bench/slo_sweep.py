"""Throughput at the SLO: the rate stepped until a scenario's fixed variant breaks it.

"Throughput" from a run only says the app kept up with what was sent. The
number a capacity plan needs is the highest rate at which the requirement
still holds. Each scenario swept here has its requirement as its symptom
(`SWEPT`): performance-testing, 99% of `GET /pricing/bands` answered within
100 ms (faults.performance_testing.SLO_P99_MS); sync-webhook, 95% of webhook
deliveries acknowledged within 50 ms (faults/sync_webhook.py); in both, errors
within 1%. Each step is an open-model run of the fixed variant (latency from
each request's intended send time, so a saturated app cannot hide by slowing
the load); the sweep doubles the rate until a step misses the SLO, and the page
of the scenario shows the table (lab/commands/scenarios.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

import faults
from lab.measurements import (
    DEFAULT_FILE,
    MeasurementFile,
    SweepMeasurement,
    machine_now,
    sweep_markdown,
)
from lab.runner import RunOptions
from lab.runner import run as run_variant

__all__ = ["RATES", "SLUG", "STEP_S", "SWEPT", "markdown", "meets", "run", "slo_value"]

SLUG = "performance-testing"
RATES = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)  # requests/s, doubling
# The scenarios swept, and their rates. sync-webhook's fixed variant also applies
# every event in its job worker on the same 2 cores; its rates stop where one
# Locust process and that consumer leave the API no CPU to ack with.
SWEPT: dict[str, tuple[float, ...]] = {
    SLUG: RATES,
    "sync-webhook": (25.0, 50.0, 100.0, 200.0, 400.0),
}
STEP_S = 15.0
# Errors are not answers: the SLO's 1% budget covers them too.
MAX_ERROR_RATE = 0.01


def slo_value(summary: dict[str, Any], metric: str = "p99_ms", route: str | None = None) -> Any:
    """The SLO's number in one step's summary: the run's, or one route's."""
    if route is None:
        return summary.get(metric)
    return ((summary.get("routes") or {}).get(route) or {}).get(metric)


def meets(
    summary: dict[str, Any], slo: float, metric: str = "p99_ms", route: str | None = None
) -> bool:
    """Whether one step's run met the SLO (its summary.json)."""
    value, errors = slo_value(summary, metric, route), summary.get("error_rate") or 0.0
    return isinstance(value, int | float) and value <= slo and errors <= MAX_ERROR_RATE


def _per_second(count: Any, seconds: float) -> float | None:
    return count / seconds if isinstance(count, int | float) else None


def run(
    where: Path,
    out: Path,
    rates: Sequence[float] | None = None,
    progress: Callable[[str], None] = lambda _description: None,
    committed: Path | None = DEFAULT_FILE,
    slug: str = SLUG,
) -> dict[str, Any]:
    """Each rate of `rates` (the scenario's in SWEPT) in turn until one misses the SLO
    (the scenario's symptom's threshold, on its metric and route); as bench.json's part."""
    symptom = faults.get(slug).symptom
    slo, metric, route = symptom.threshold, symptom.metric, symptom.route
    points: list[dict[str, Any]] = []
    quiet = Console(file=io.StringIO())
    for rate in rates or SWEPT[slug]:
        progress(f"{slug} fixed at {rate:g} requests/s")
        result = run_variant(
            RunOptions(slug, fixed=True, rate=rate, duration_s=STEP_S, out=out), quiet
        )
        if result.status == "interrupted":
            raise KeyboardInterrupt
        summary = result.summary
        points.append({
            # Sent over the schedule's length, not the load window's (which also holds
            # Locust's start-up and shut-down).
            "rate": rate, "rps": _per_second(summary.get("requests"), STEP_S),
            "p99_ms": summary.get("p99_ms"), "value": slo_value(summary, metric, route),
            "error_rate": summary.get("error_rate"), "status": result.status,
            "meets": result.status == "completed" and meets(summary, slo, metric, route),
            "run": str(result.run_dir),
        })  # fmt: skip
        if not points[-1]["meets"]:
            break
    measured = SweepMeasurement(
        slug=slug, variant="fixed", slo_p99_ms=slo, step_s=STEP_S, points=tuple(points),
        provenance=machine_now("bench (rate sweep)", str(where)),
        slo_metric=metric, slo_route=route,
    )  # fmt: skip
    if committed is not None:
        MeasurementFile.store(committed, measured)
    return measured.as_dict()


def markdown(part: dict[str, Any], slug: str = SLUG) -> list[str]:
    """bench.md's table of the part `run` returned (the page shows the same)."""
    return sweep_markdown(SweepMeasurement.from_dict(slug, part))
