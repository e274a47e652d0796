"""cpu-bound (seeds 1, 17): the same heavy computation, again, on every request.

Seam: `QuoteCalculator`, the shipping-quote calculator of `GET /quotes/{product_id}`
(`seams.pick(cpu_bound.SCENARIO)`). The answer depends only on (product, zone): the quotes
workload asks for a hundred distinct inputs, recomputed thousands of times.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Scenario, Symptom

__all__ = [
    "SCENARIO",
    "CachedQuotes",
    "QuoteCalculator",
    "QuoteParams",
    "RecomputedQuotes",
    "simulate_routes",
]


class QuoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(
        150_000, ge=1_000, le=5_000_000, description="work per quote (route simulation steps)"
    )
    cache_entries: int = Field(4096, ge=1, le=1_000_000, description="fixed: LRU bound")


class QuoteCalculator(Protocol):
    """The seam: the shipping cost, in cents, of a product to a zone."""

    def quote(self, product_id: int, zone: int) -> int: ...


def simulate_routes(product_id: int, zone: int, iterations: int) -> int:
    """The hot function: a pure-Python simulation of carrier routes (CPU, no I/O)."""
    cost = product_id * 31 + zone
    for step in range(iterations):
        cost = (cost * 1_103_515_245 + step) % 2_147_483_647
    return cost % 5_000 + 499  # cents


# --- faulty -----------------------------------------------------------------


class RecomputedQuotes:
    """Compute every quote from scratch: the GIL-bound loop runs per request."""

    def __init__(self, params: QuoteParams) -> None:
        self.iterations = params.iterations

    def quote(self, product_id: int, zone: int) -> int:
        return simulate_routes(product_id, zone, self.iterations)


# --- fixed ------------------------------------------------------------------


class CachedQuotes:
    """Compute each (product, zone) once and keep it, bounded (LRU).

    In production this cache belongs in Redis with a TTL (see no-cache); when the
    inputs do not repeat, the fix is a process pool instead, so that the loop
    does not hold the GIL of the worker that serves everything else.
    """

    def __init__(self, params: QuoteParams) -> None:
        self.iterations = params.iterations
        self.max_entries = params.cache_entries
        self._quotes: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._lock = threading.Lock()

    def quote(self, product_id: int, zone: int) -> int:
        key = (product_id, zone)
        with self._lock:
            if key in self._quotes:
                self._quotes.move_to_end(key)
                return self._quotes[key]
        value = simulate_routes(product_id, zone, self.iterations)
        with self._lock:
            self._quotes[key] = value
            while len(self._quotes) > self.max_entries:
                self._quotes.popitem(last=False)
        return value


SCENARIO: Scenario[QuoteCalculator, QuoteParams] = Scenario(
    slug="cpu-bound",
    title="Endpoint slow from heavy pure-Python work, recomputed per request",
    seeds=(1, 17),
    kind="fault",
    summary=(
        "A shipping quote runs a CPU-heavy pure-Python loop on every request although its "
        "inputs repeat; the worker's CPU saturates and p95 follows. Cached per input, the "
        "loop runs once per (product, zone)."
    ),
    faulty=RecomputedQuotes,
    fixed=CachedQuotes,
    params=QuoteParams,
    workload="quotes",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="app_cpu_ms_per_request",
        op=">",
        threshold=5.0,
        description="each request burns milliseconds of CPU computing a known answer",
    ),
    diagnosis="""\
**What you see.** App CPU near 100% of a core (report: CPU plot) while the DB
and upstream shares are ~0; `app_cpu_ms_per_request` in the tens of ms; p95
rises with concurrency as requests queue for the GIL.

**Find it.** `make fault=cpu-bound load profile=py-spy`: the report quotes
py-spy's hottest functions, and `simulate_routes` (faults/cpu_bound.py) tops
the list; the flamegraph shows it under `quote_shipping`. `py-spy top --pid`
shows the same live.

**Follow-ups.** Async does not help CPU-bound work (it never yields); a
threadpool does not either (the GIL). Cache results whose inputs repeat (Redis
over in-memory when several workers should share them, see no-cache), move the
work to a process pool or a job queue when they do not, and optimise the hot
function last (vectorise, a C extension) once the profile says so.
""",
)
