"""How a cause shows itself in a run's evidence: the diagnosis engine's seam.

A scenario declares a `signature` (faults/_contract.py): a function of the
run's `Signs` that returns a `Finding` (this cause, how strongly, and the clues)
or None. The engine (reports/diagnosis/) builds the Signs from a blinded run dir,
which holds only what an engineer has in production (reports/diagnosis/blind.py),
calls every signature and ranks what they found. A signature reads mechanisms
(the RSS a request leaves behind, queries per request, event-loop lag against
CPU), never a route or a file name that only the lab's workload would have.

Each clue states the bound a healthy service keeps, so the report can say the
value against it. `strength` turns "how far past that bound" into a score:
at the bound 0.5 (the verdict's line between healthy and degraded), ten times
past it 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEGRADED",
    "Clue",
    "Finding",
    "Frame",
    "RouteSigns",
    "Signature",
    "Signs",
    "finding",
    "strength",
    "weakness",
]

# A finding at or above this score is a cause; below, a lead the engine lists
# without calling the run degraded.
DEGRADED = 0.5


def strength(value: float | None, bound: float, *, span: float = 10.0) -> float:
    """0 when `value` is within the healthy `bound` (or unknown); 0.5 just past it,
    1.0 at `span` times it (log scale in between). For an upper bound."""
    if value is None or not math.isfinite(value) or bound <= 0 or value <= bound:
        return 0.0
    return min(1.0, 0.5 + 0.5 * math.log(value / bound) / math.log(span))


def weakness(value: float | None, bound: float, *, span: float = 10.0) -> float:
    """As `strength` for a lower bound: 0.5 just below it, 1.0 at bound / span."""
    if value is None or not math.isfinite(value) or value >= bound:
        return 0.0
    if value <= 0:
        return 1.0
    return min(1.0, 0.5 + 0.5 * math.log(bound / value) / math.log(span))


@dataclass(frozen=True)
class Clue:
    """One piece of evidence: what was measured, its value, what a healthy run keeps."""

    what: str  # "RSS growth per 10k requests (lab_app_rss_bytes)"
    value: float | str | None
    healthy: str = ""  # "< 10"
    unit: str = ""

    def line(self) -> str:
        if self.value is None:
            shown = "not measured"
        elif isinstance(self.value, float):
            shown = f"{self.value:.4g}"
        else:
            shown = str(self.value)
        unit = f" {self.unit}" if self.unit else ""
        against = f" (healthy: {self.healthy}{unit})" if self.healthy else ""
        return f"{self.what}: {shown}{unit}{against}"


@dataclass(frozen=True)
class Finding:
    """A candidate cause: a catalogue slug, or a cause class of the environment
    ("latency on the database link"), with a score in [0, 1] and its clues."""

    cause: str
    score: float
    clues: tuple[Clue, ...]
    confirm: str = ""  # the command that would confirm it
    route: str | None = None  # the route it shows on, when one stands out


@dataclass(frozen=True)
class RouteSigns:
    """What the clients saw of one route (requests.csv)."""

    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Frame:
    """One of the profile's hottest functions (profile/profile.json `top`)."""

    function: str
    location: str
    share: float  # of busy samples (py-spy) or of the bytes allocated (memray)


@dataclass(frozen=True)
class Signs:
    """A run's evidence as a diagnosis reads it. Every number is None when the run
    did not measure it."""

    numbers: Mapping[str, float | None]  # summary fields plus the engine's own (see engine)
    routes: Mapping[str, RouteSigns] = field(default_factory=dict)
    # Counters: increase in the load window, by "name" and by "name{labels}".
    counters: Mapping[str, float] = field(default_factory=dict)
    # Gauges: largest value in the load window and the last one after it, by name.
    gauge_max: Mapping[str, float] = field(default_factory=dict)
    gauge_end: Mapping[str, float] = field(default_factory=dict)
    # app.log: records by "level logger: message" (numbers and ids collapsed),
    # and the exception classes of the tracebacks it holds.
    logs: Mapping[str, int] = field(default_factory=dict)
    exceptions: Mapping[str, int] = field(default_factory=dict)
    profile_tool: str | None = None  # "py-spy" | "memray"
    frames: tuple[Frame, ...] = ()
    workers: int = 1  # app processes (lab_app_processes, else meta.json's app.workers)
    cpus: int | None = None  # the machine's

    def number(self, name: str) -> float | None:
        return self.numbers.get(name)

    def counter(self, name: str) -> float:
        return self.counters.get(name, 0.0)

    def log_count(self, *needles: str) -> int:
        """Records whose key holds every needle (case-insensitive)."""
        lowered = [n.lower() for n in needles]
        return sum(c for key, c in self.logs.items() if all(n in key.lower() for n in lowered))

    def slowest_route(self) -> tuple[str, RouteSigns] | None:
        rows = [(n, r) for n, r in self.routes.items() if r.p50_ms is not None and r.requests >= 5]
        return max(rows, key=lambda nr: nr[1].p50_ms or 0.0) if rows else None

    # Mechanisms several signatures share.

    def cpu_heavy(self) -> float:
        """Requests that burn CPU in the event loop: the weaker of CPU per request
        (healthy < 5 ms) and the loop's lag (healthy p99 < 100 ms)."""
        return min(
            strength(self.number("cpu_ms_per_served"), 5.0),
            strength(self.number("event_loop_lag_p99_ms"), 100.0),
        )

    def peak_memory(self) -> float:
        """A request that needs far more memory than it returns: the peak RSS rising
        by more than 100 MB. One process only: a worker booting moves the sum."""
        if self.workers > 1:
            return 0.0
        return strength(self.number("peak_rss_growth_mb"), 100.0)

    @property
    def db_bound(self) -> bool:
        """Requests spend most (>= 80%) of their time in the database."""
        return (self.number("db_time_share") or 0.0) >= 0.8

    @property
    def slowest_method(self) -> str:
        """The HTTP method of the slowest route ("GET", "POST"); "" without routes."""
        found = self.slowest_route()
        return found[0].split(" ", 1)[0] if found else ""

    @property
    def outgoing_http(self) -> int:
        """Outgoing HTTP calls the app logged (httpx), timed by its metrics or not."""
        return self.log_count("httpx: HTTP Request")

    def hot(self, *needles: str) -> float:
        """The profile's share in functions whose location or name holds a needle."""
        return sum(
            f.share for f in self.frames if any(n in f.location or n in f.function for n in needles)
        )


Signature = Callable[[Signs], Finding | None]


def finding(
    cause: str, score: float, clues: tuple[Clue, ...], *, confirm: str = ""
) -> Finding | None:
    """The Finding, or None when the score is 0 (nothing past its bound)."""
    return Finding(cause, score, clues, confirm=confirm) if score > 0 else None
