"""The symptom predicate: one implementation, used by the scenarios and by reports/.

A symptom is declarative on purpose. It is written into a run's `meta.json` as
a plain dict, so a report (or the diagnosis engine) evaluates it from the run
dir alone, on another machine, without importing the catalogue. This module
is a leaf: the standard library only, so `reports/` can import it without
pulling in `faults`' scenario modules or the app.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["OPERATORS", "Op", "Symptom", "SymptomResult", "evaluate_symptom", "finite"]

Op = Literal[">", ">=", "<", "<="]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def finite(value: Any) -> float | None:
    """A finite float, or None (bools, strings, NaN and infinities are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class SymptomResult:
    name: str
    value: float | None
    threshold: float
    op: str
    present: bool
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "present": self.present,
            "description": self.description,
        }


@dataclass(frozen=True)
class Symptom:
    """A measurable predicate over a run's `summary.json`.

    `metric` is a summary field; with `route`, that field of one Locust
    request name (`summary["routes"][route]`); with `baseline_route`, divided
    by the same field of another request name ("deep page p50 / first page p50").
    """

    metric: str
    op: Op
    threshold: float
    description: str
    route: str | None = None
    baseline_route: str | None = None

    def evaluate(self, summary: Mapping[str, Any]) -> SymptomResult:
        result = evaluate_symptom(self.as_dict(), summary)
        assert result is not None  # a Symptom always makes a valid spec
        return SymptomResult(**result)

    def as_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "metric": self.metric,
            "op": self.op,
            "threshold": self.threshold,
            "description": self.description,
        }
        if self.route:
            spec["route"] = self.route
        if self.baseline_route:
            spec["baseline_route"] = self.baseline_route
        return spec

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Symptom:
        return cls(
            metric=data["metric"],
            op=data["op"],
            threshold=float(data["threshold"]),
            description=data.get("description", ""),
            route=data.get("route"),
            baseline_route=data.get("baseline_route"),
        )


def _route_value(summary: Mapping[str, Any], route: str, metric: str) -> float | None:
    routes = summary.get("routes") or {}
    numbers = routes.get(route) if isinstance(routes, Mapping) else None
    return finite(numbers.get(metric)) if isinstance(numbers, Mapping) else None


def evaluate_symptom(spec: Any, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """Evaluate a symptom spec (meta.json's) against a summary. None without a valid spec."""
    if not isinstance(spec, Mapping):
        return None
    metric = spec.get("metric")
    op = spec.get("op")
    threshold = finite(spec.get("threshold"))
    if not isinstance(metric, str) or op not in OPERATORS or threshold is None:
        return None
    route, baseline = spec.get("route"), spec.get("baseline_route")
    value = _route_value(summary, route, metric) if route else finite(summary.get(metric))
    name = f"{metric} of {route}" if route else metric
    if baseline:
        base = _route_value(summary, baseline, metric)
        value = finite(value / base) if value is not None and base else None
        name = f"{name} / {metric} of {baseline}"
    present = value is not None and OPERATORS[op](value, threshold)
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "op": op,
        "present": bool(present),
        "description": str(spec.get("description") or ""),
    }
