"""The eval's corpus and the drill's cases: seeded runs of the diagnosable scenarios.

The corpus (`plan`): every diagnosable scenario (kinds fault, network,
deployment, release; a pattern scenario is a way of measuring, not a cause),
`per_variant` runs of each variant, each with its own load and parameters drawn
from a seeded generator:
- users 0.5x to 1.5x the scenario's default (an open-model run: its rate 0.7x
  to 1.3x), 15 to 25 s, a constant or a step shape;
- each numeric parameter at its default, half or double it (kept inside the
  field's bounds), a choice parameter at any of its values;
plus runs with no fault on the mixed workload (a scenario's fixed variant,
which leaves the shop as a careful team would run it). The same seed gives
the same plan. `lab eval` (lab/commands/eval.py) runs it; `lab drill` (lab/drill.py)
draws one case the same way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import faults

__all__ = ["DIAGNOSABLE_KINDS", "PlannedRun", "plan", "varied_load", "varied_params"]

DIAGNOSABLE_KINDS = ("fault", "network", "deployment", "release")
# Runs with no fault: the fixed variant of a scenario whose fixed code is the shop
# as a careful team runs it, on the mixed workload (every route a shopper uses).
HEALTHY_BASES = ("memory-leak", "n-plus-one", "no-cache")


@dataclass(frozen=True)
class PlannedRun:
    slug: str
    fixed: bool
    duration_s: int
    users: int | None = None
    rate: float | None = None
    shape: str = "constant"
    params: dict[str, Any] = field(default_factory=dict)
    workload: str | None = None
    label: str = ""  # "healthy" for a no-fault run

    def args(self, out: Path) -> list[str]:
        args = ["run", self.slug, "--out", str(out), "--duration", f"{self.duration_s}s"]
        args += ["--shape", self.shape]
        if self.fixed:
            args.append("--fixed")
        if self.users is not None:
            args += ["--users", str(self.users)]
        if self.rate is not None:
            args += ["--rate", f"{self.rate:g}"]
        if self.workload:
            args += ["--workload", self.workload]
        for name, value in sorted(self.params.items()):
            args += ["--param", f"{name}={value}"]
        return args

    def describe(self) -> str:
        variant = "fixed" if self.fixed else "faulty"
        load = f"rate {self.rate:g}/s" if self.rate else f"{self.users or 'default'} users"
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())) or "defaults"
        what = self.label or f"{self.slug} {variant}"
        return f"{what}: {load}, {self.duration_s}s {self.shape}, {params}"


def varied_params(scenario: faults.Scenario[Any, Any], rng: random.Random) -> dict[str, Any]:
    """A value for each parameter within its field's bounds; only the valid set is kept."""
    chosen: dict[str, Any] = {}
    for name, info in scenario.params.model_fields.items():
        default = info.default
        annotation = info.annotation
        if get_origin(annotation) is Literal:
            chosen[name] = rng.choice(get_args(annotation))
            continue
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        factor = rng.choice((1.0, 0.5, 2.0))
        value: int | float = default * factor
        if isinstance(default, int):
            value = max(1, round(value))
        candidate = {**chosen, name: value}
        try:
            faults.validate_params(scenario, candidate)
        except faults.InvalidParams:
            continue
        if value != default:
            chosen[name] = value
    faults.validate_params(scenario, chosen)
    return chosen


def varied_load(scenario: faults.Scenario[Any, Any], rng: random.Random) -> dict[str, Any]:
    load = scenario.default_load
    out: dict[str, Any] = {"duration_s": rng.choice((15, 20, 25))}
    if load.get("rate"):
        out["rate"] = round(float(load["rate"]) * rng.uniform(0.7, 1.3), 2)
    else:
        users = int(load.get("users", 20))
        out["users"] = max(1, round(users * rng.uniform(0.5, 1.5)))
    # A step shape only where users are many enough to step.
    out["shape"] = rng.choice(("constant", "step")) if out.get("users", 0) >= 8 else "constant"
    return out


def plan(seed: int = 0, per_variant: int = 2, only: Sequence[str] = ()) -> list[PlannedRun]:
    """The seeded corpus: the same arguments give the same runs."""
    rng = random.Random(seed)
    runs: list[PlannedRun] = []
    for scenario in faults.all_scenarios():
        if scenario.kind not in DIAGNOSABLE_KINDS or (only and scenario.slug not in only):
            continue
        for fixed in (False, True):
            for _ in range(per_variant):
                runs.append(
                    PlannedRun(
                        slug=scenario.slug,
                        fixed=fixed,
                        params=varied_params(scenario, rng),
                        **varied_load(scenario, rng),
                    )
                )
    if not only:
        for base in HEALTHY_BASES:
            runs.append(
                PlannedRun(
                    slug=base, fixed=True, duration_s=rng.choice((15, 20, 25)),
                    users=rng.choice((10, 20, 30)), workload="mixed", label="healthy",
                )
            )  # fmt: skip
    return runs
