"""The scenario contract: what one module in `faults/` declares.

A scenario module defines one module-level `SCENARIO = Scenario(...)`. It holds,
side by side, the faulty and the fixed implementation of one seam of the app,
the symptom that tells them apart, and the diagnosis notes. The registry finds
it by walking the package; nothing else has to be edited to add one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Deployment", "NoParams", "Scenario", "Symptom", "SymptomResult", "Toxic", "Variant"]

Variant = Literal["faulty", "fixed"]
Kind = Literal["fault", "network", "pattern", "deployment"]


class NoParams(BaseModel):
    """Parameters of a scenario that takes none: any key is refused."""

    model_config = ConfigDict(extra="forbid")


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

    Declarative on purpose: it is written into the run's `meta.json`, so a
    report (or, later, the diagnosis engine) can evaluate it from the run dir
    alone, without importing the scenario. `metric` is a summary field; with
    `route`, that field of one Locust request name; with `baseline_route`,
    divided by the same field of another request name.
    """

    metric: str  # a key of summary.json (or of summary.json's routes[route])
    op: Literal[">", ">=", "<", "<="]
    threshold: float
    description: str
    route: str | None = None
    baseline_route: str | None = None

    def evaluate(self, summary: Mapping[str, Any]) -> SymptomResult:
        # One implementation of the predicate: the one reports/ applies to run dirs.
        from reports.summary import evaluate_symptom

        result = evaluate_symptom(self.as_dict(), summary)
        assert result is not None
        return SymptomResult(
            result["name"], result["value"], self.threshold, self.op, result["present"],
            self.description,
        )  # fmt: skip

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


@dataclass(frozen=True)
class Toxic:
    """A network condition on one of the app's links, applied through Toxiproxy.

    A network scenario's toxics are its *environment*: they are on in both
    variants, and the variants differ in how the code copes (timeouts, retries,
    fewer round trips). `type="down"` disables the link's proxy altogether.
    """

    link: str  # a key of lab.topology.LINKS: postgres, redis, upstream
    type: str  # latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, down
    attributes: Mapping[str, float] = field(default_factory=dict)
    stream: Literal["downstream", "upstream"] = "downstream"
    toxicity: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "type": self.type,
            "attributes": dict(self.attributes),
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


@dataclass(frozen=True)
class Deployment:
    """How the app is started. A deployment scenario's variants are these, not code:
    the same app, run differently (worker count today; a release switch later)."""

    workers: int  # 0: one worker per CPU core

    @property
    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class Scenario:
    """One incident of the catalogue.

    `faulty` and `fixed` are factories: each takes the validated parameters and
    returns the implementation of the seam. A worker builds each variant once
    per parameter set and keeps it, so state such as a cache lives as long as
    the worker, exactly as it would in production.
    """

    slug: str
    title: str
    seeds: tuple[int, ...]
    kind: Kind
    summary: str
    faulty: Callable[[Any], Any]
    fixed: Callable[[Any], Any]
    symptom: Symptom
    params: type[BaseModel] = NoParams
    requires: tuple[str, ...] = ()
    workload: str = "shop"  # a module of loadtests/workloads
    # The load that makes the symptom visible in a short run on 2 cores:
    # {"users": int, "duration": "30s"}; the command line overrides it.
    default_load: Mapping[str, Any] = field(default_factory=dict)
    diagnosis: str = ""  # markdown: signal, tool, exact command, follow-up answers
    # Which profile tells this story: "memory" runs memray with its leaks view.
    profile_hint: Literal["cpu", "memory"] = "cpu"
    # Network conditions the run applies, in both variants (see Toxic).
    toxics: tuple[Toxic, ...] = ()
    # Set the database up for a variant before the app starts (e.g. migrate to
    # the schema revision the variant stands for): prepare(variant, database_url).
    prepare: Callable[[Variant, str], None] | None = None

    def build(self, variant: Variant, params: BaseModel) -> Any:
        factory = self.faulty if variant == "faulty" else self.fixed
        return factory(params)

    def deployment(self, variant: Variant, params: BaseModel) -> Deployment | None:
        """The variant's deployment, for a scenario of kind "deployment"; else None."""
        if self.kind != "deployment":
            return None
        built = self.build(variant, params)
        if not isinstance(built, Deployment):
            raise TypeError(f"{self.slug}: a deployment scenario's variants return Deployment")
        return built

    def describe(self) -> dict[str, Any]:
        """The machine-readable card used by `lab scenarios --json` and the admin API."""
        return {
            "slug": self.slug,
            "title": self.title,
            "seeds": list(self.seeds),
            "kind": self.kind,
            "requires": list(self.requires),
            "workload": self.workload,
            "summary": self.summary,
            "symptom": self.symptom.as_dict(),
            "toxics": [t.as_dict() for t in self.toxics],
            "params": self.params.model_json_schema().get("properties", {}),
        }
