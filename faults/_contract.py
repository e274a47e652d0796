"""The scenario contract: what one module in `faults/` declares.

A scenario module defines one module-level `SCENARIO: Scenario[Seam, Params]`.
It holds, side by side, the faulty and the fixed implementation of one seam of
the app, the symptom that tells them apart, and the diagnosis notes. The
registry finds it by walking the package; the app reaches the seam with
`seams.pick(<module>.SCENARIO)`, which returns the seam's interface type.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from faults._signs import Signature
from faults.symptom import Symptom, SymptomResult

__all__ = [
    "Answer",
    "Deployment",
    "Fleet",
    "Instance",
    "NoParams",
    "Release",
    "ReleaseProcedure",
    "RolloutStopped",
    "Scenario",
    "Symptom",
    "SymptomResult",
    "Toxic",
    "Variant",
    "WorkerClass",
]

# The catalogue's boundary: a scenario module imports this leaf, the standard
# library, pydantic and the libraries its variants use at module level, and
# names from `target_app` only under TYPE_CHECKING or inside the code that runs
# them. So `lab scenarios`, validation and the registry never import the app
# (its models, clients and metrics); tests/unit/test_layering.py checks it.

Variant = Literal["faulty", "fixed"]
Seam = TypeVar("Seam")
Params = TypeVar("Params", bound=BaseModel)
Kind = Literal["fault", "network", "pattern", "deployment", "release"]


class NoParams(BaseModel):
    """Parameters of a scenario that takes none: any key is refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Toxic:
    """A network condition on one of the app's links, applied through Toxiproxy.

    A network scenario's toxics are its *environment*: they are on in both
    variants, and the variants differ in how the code copes (timeouts, retries,
    fewer round trips). `type="down"` disables the link's proxy altogether.
    """

    link: str  # a key of lab.topology.LINKS: postgres, redis, upstream, inventory
    type: str  # latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, down
    attributes: Mapping[str, float] = field(default_factory=dict)
    stream: Literal["downstream", "upstream"] = "downstream"
    toxicity: float = 1.0
    # An intermittent condition (a network that partitions now and then): on for
    # `for_s` seconds at the end of every `every_s`, from the run's start; None: on
    # for the whole run. A per-connection `toxicity` spares a pooled client's
    # long-lived connections; a window hits every connection open in it.
    every_s: float | None = None
    for_s: float | None = None

    def __post_init__(self) -> None:
        if (self.every_s is None) != (self.for_s is None):
            raise ValueError(f"{self.link} {self.type}: give both every_s and for_s, or neither")
        if (
            self.every_s is not None
            and self.for_s is not None
            and not (0 < self.for_s < self.every_s)
        ):
            raise ValueError(f"{self.link} {self.type}: 0 < for_s < every_s")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "link": self.link,
            "type": self.type,
            "attributes": dict(self.attributes),
            "stream": self.stream,
            "toxicity": self.toxicity,
        }
        if self.every_s is not None:
            out |= {"every_s": self.every_s, "for_s": self.for_s}
        return out


@dataclass(frozen=True)
class Answer:
    """A seed question, or one of its follow-ups, answered on the scenario's page.

    `question` is the question as asked (the seed's Q or a follow-up); `answer` is
    markdown in the page's own words. An answer cites the lab's measurements by
    name instead of typing numbers in: `{faulty.METRIC}`, `{fixed.METRIC}` and
    `{ratio.METRIC}` (faulty over fixed), METRIC being a summary.json key. The page
    fills them in from the latest measured run of the scenario, and says which run
    that was, when and on what machine (lab/measurements.py).
    """

    question: str
    answer: str


WorkerClass = Literal["uvicorn", "gthread"]


@dataclass(frozen=True)
class Deployment:
    """How the app is started. A deployment scenario's variants are these, not code:
    the same app, run differently (worker count and type today; a release switch later).

    `worker_class` "uvicorn": gunicorn with uvicorn workers (one process: uvicorn
    alone); "gthread": gunicorn's threaded WSGI worker, the app behind an ASGI-to-WSGI
    adapter (target_app/wsgi.py), each worker serving `threads` requests at a time.
    """

    workers: int  # 0: one worker per CPU core
    worker_class: WorkerClass = "uvicorn"
    threads: int = 1  # gthread: requests one worker serves at once

    @property
    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


# --- a release scenario's seam: the procedure that deploys a new release ---------------
#
# The lab runs the app behind a real reverse proxy (nginx, lab/proxy.py) and, during
# the load, hands the variant's procedure a Fleet (lab/rollout.py): start a release
# next to the live one, switch the proxy, stop one, migrate the schema. The procedure
# is the variant; what it deploys and what goes wrong with it are the scenario's.


class RolloutStopped(Exception):
    """The run is stopping (the load ended, Ctrl-C): a procedure ends where it is."""


@dataclass(frozen=True)
class Release:
    """A release of the app: the schema revision it needs and its configuration.

    `env` is laid over the live release's settings: what the release changes
    (and where its mistake is, for a broken one); `mistake` says it in one sentence.
    """

    name: str
    revision: str  # the Alembic revision its code needs
    env: Callable[[Mapping[str, str]], Mapping[str, str]]  # live settings -> its own
    mistake: str = ""


class Instance(Protocol):
    """One running release: a process of its own, behind the proxy or not yet."""

    @property
    def name(self) -> str: ...  # "blue", "green"

    @property
    def url(self) -> str: ...  # its own address, not the proxy's


class Fleet(Protocol):
    """What a deploy procedure drives. Every call is real: processes, nginx, Alembic."""

    @property
    def live(self) -> Instance: ...  # where the proxy sends requests now

    def revision(self) -> str: ...  # the database's Alembic revision now

    def migrate(self, revision: str) -> None: ...  # up or down to `revision`

    def start(self, release: Release) -> Instance: ...  # its process; returns at once

    def switch(self, to: Instance) -> None: ...  # returns once the proxy sends to `to`

    def stop(self, instance: Instance) -> None: ...  # lets its requests in flight finish

    def served(self, instance: Instance, since: float) -> tuple[int, int]:
        """(requests, failed ones: status >= 500) the proxy logged for `instance`
        since `since` (time.time()): the proxy's own records, not the app's."""
        ...

    def wait(self, seconds: float) -> None: ...  # raises RolloutStopped when the run stops

    def note(self, event: str, **detail: Any) -> None: ...  # the rollout's timeline


@runtime_checkable
class ReleaseProcedure(Protocol):
    """A release scenario's variant: how `deploy` brings `release` live (or not)."""

    release: Release
    at_s: float  # when, after the load's start, the deploy begins

    def deploy(self, fleet: Fleet) -> str: ...  # its outcome: "switched", "refused", ...


@dataclass(frozen=True)
class Scenario(Generic[Seam, Params]):
    """One incident of the catalogue, and the typed seam of the app it toggles.

    `Seam` is the interface both variants implement (a Protocol in the scenario
    module, or in target_app where the app owns it). Declare it on the module's
    constant, `SCENARIO: Scenario[PageCache, PageCacheParams] = Scenario(...)`,
    and mypy checks each variant against it, and the route's use of what
    `FaultRuntime.pick(SCENARIO)` returns against it too.

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
    faulty: Callable[[Params], Seam]
    fixed: Callable[[Params], Seam]
    params: type[Params]
    symptom: Symptom
    requires: tuple[str, ...] = ()
    workload: str = "shop"  # a module of loadtests/workloads
    # The load that makes the symptom visible in a short run on 2 cores:
    # {"users": int, "duration": "30s"}, or {"rate": req/s, ...} for an open-model
    # load (requests on a schedule); "rows": products seeded, when the symptom needs a
    # catalogue bigger than the lab's 10,000. The command line overrides each of them
    # (--rate 0: closed).
    default_load: Mapping[str, Any] = field(default_factory=dict)
    diagnosis: str = ""  # markdown: signal, tool, exact command
    # The seed question(s) and each follow-up, answered with the lab's measurements.
    answers: tuple[Answer, ...] = ()
    # Which profile tells this story: "memory" runs memray with its leaks view.
    profile_hint: Literal["cpu", "memory"] = "cpu"
    # Network conditions the run applies, in both variants (see Toxic).
    toxics: tuple[Toxic, ...] = ()
    # Set the database up for a variant before the app starts (e.g. migrate to
    # the schema revision the variant stands for): prepare(variant, database_url).
    # It runs in the lab's process, not the app's.
    prepare: Callable[[Variant, str], None] | None = None
    # Job worker processes (Dramatiq, target_app/worker.py) the run starts next to
    # the app, in both variants, and stops with it; 0: none. They need Redis.
    job_workers: int = 0
    # Threads of each job worker: 1 runs one job at a time (a CPU-heavy job); jobs
    # that mostly wait (a provider's API) need one thread per job in flight.
    job_threads: int = 1
    # App worker processes (gunicorn + uvicorn workers) the run starts in both
    # variants, for a scenario whose symptom is per-process state; a deployment
    # scenario's variants give their own count instead.
    app_workers: int = 1
    # Settings the app runs with in both variants (e.g. SCHEDULER_ENABLED=true):
    # the part of the app the scenario exercises, switched on for its runs.
    app_env: Mapping[str, str] = field(default_factory=dict)
    # Gauges of the app's /metrics that must fall to 0 after the load before the
    # run ends (work the load left behind: queued jobs, undelivered messages);
    # the run waits for them as for its job workers' queue.
    drains: tuple[str, ...] = ()
    # What only the services' own records can tell after a run (the load and the
    # drain over): counts from their databases, by the run's service addresses
    # (DATABASE_DIRECT_URL, ...), in the lab's process. Written to audit.json; the
    # summary's audit metrics (reports/metrics.py) come from it.
    audit: Callable[[Mapping[str, str]], Mapping[str, int | float]] | None = None
    # How the cause shows in a run's blinded evidence (faults/_signs.py): the
    # diagnosis engine calls it on every run; None: the engine cannot name it yet.
    signature: Signature | None = None
    # The condition of the environment a network scenario applies, as the diagnosis
    # names it in a run whose code copes with it ("latency on the database link").
    environment: str = ""

    def build(self, variant: Variant, params: Params) -> Seam:
        factory = self.faulty if variant == "faulty" else self.fixed
        return factory(params)

    def deployment(self, variant: Variant, params: Params) -> Deployment | None:
        """The variant's deployment, for a scenario of kind "deployment"; else None."""
        if self.kind != "deployment":
            return None
        built = self.build(variant, params)
        if not isinstance(built, Deployment):
            raise TypeError(f"{self.slug}: a deployment scenario's variants return Deployment")
        return built

    @property
    def toggled(self) -> bool:
        """Whether a running app switches it (a toggle); a deployment's or a release's
        variants are how the lab starts and deploys the app, nothing a process switches."""
        return self.kind not in ("deployment", "release")

    def procedure(self, variant: Variant, params: Params) -> ReleaseProcedure | None:
        """The variant's deploy procedure, for a scenario of kind "release"; else None."""
        if self.kind != "release":
            return None
        built = self.build(variant, params)
        if not isinstance(built, ReleaseProcedure):
            raise TypeError(f"{self.slug}: a release scenario's variants are ReleaseProcedure")
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
            "app_workers": self.app_workers,
            "summary": self.summary,
            "symptom": self.symptom.as_dict(),
            "toxics": [t.as_dict() for t in self.toxics],
            "params": self.params.model_json_schema().get("properties", {}),
            "answers": [{"question": a.question, "answer": a.answer} for a in self.answers],
        }
