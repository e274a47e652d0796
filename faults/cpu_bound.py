"""cpu-bound (seeds 1, 17): the same cheapest-route search, again, on every request.

Seam: `QuoteCalculator`, the shipping-quote calculator of `GET /quotes/{product_id}`
(`seams.pick(cpu_bound.SCENARIO)`).

The work is what a shop that drop-ships does to price a parcel: find the cheapest
route through the carrier's lane network, from the hub of the product's supplier to
the delivery hubs of the customer's zone, with networkx's Dijkstra
(`nx.single_source_dijkstra_path_length`, the call its documentation shows). It is
pure-Python graph code, ~15-30 ms of one core per quote on this lab's 10,000-hub
network, and it holds the GIL all along.

Why this work, and why this fix. The answer is a pure function of (product, zone)
and of the lane network, which the carrier republishes rarely (daily): the same
input always gives the same quote, and a shop's best sellers are asked for again and
again. So the fix is a cache in front of it (`cachetools.TTLCache`, bounded, with a
TTL as long as a published rate card is valid, and a `threading.Condition` so that
concurrent requests for one key compute it once), not a process pool. A process
pool is the fix for CPU work whose inputs never repeat (password hashing with a
random salt: its result cannot be cached); here it would only spread a wasted
computation over more cores, and on the lab's 2 cores it would take them from the
load. Where inputs do not repeat (the cpu_mix workload of single-worker), the cache
does not save the work, and the worker count is what matters.
"""

from __future__ import annotations

import functools
import threading
import zlib
from typing import TYPE_CHECKING, Protocol

import cachetools
from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "GRID_SIDE",
    "SCENARIO",
    "ZONES",
    "CachedQuotes",
    "QuoteCalculator",
    "QuoteParams",
    "RecomputedQuotes",
    "carrier_network",
    "cheapest_route_cost",
    "origin_hub",
    "price_cents",
    "zone_hubs",
]

GRID_SIDE = 100  # the carrier's lane network: a 100 x 100 grid of hubs (10,000 hubs, 19,800 lanes)
ZONES = 10  # delivery zones: bands of GRID_SIDE // ZONES rows of hubs each


class QuoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cache_entries: int = Field(
        10_000, ge=1, le=1_000_000, description="fixed: quotes kept (LRU beyond the TTL)"
    )
    cache_ttl_seconds: float = Field(
        3600, gt=0, le=86_400, description="fixed: how long a quote stays valid"
    )


class QuoteCalculator(Protocol):
    """The seam: the shipping cost, in cents, of a product to a zone."""

    def quote(self, product_id: int, zone: int) -> int: ...


@functools.cache
def carrier_network() -> nx.Graph:
    """The carrier's lane network, loaded once per process: hubs and lanes, a cost per lane.

    A grid is the shape of a road network; each lane's cost is fixed by its ends.
    """
    # Imported here, not at module level: listing the catalogue must not pay for
    # networkx (a quarter of a second); the app loads the network at start-up.
    import networkx as nx

    grid = nx.grid_2d_graph(GRID_SIDE, GRID_SIDE)
    for u, v, lane in grid.edges(data=True):
        lane["cost"] = 1 + zlib.crc32(repr(sorted((u, v))).encode()) % 40
    # Hub numbers: row * GRID_SIDE + column.
    network: nx.Graph = nx.convert_node_labels_to_integers(grid, ordering="sorted")
    return network


def origin_hub(product_id: int) -> int:
    """The hub of the product's supplier (drop-shipping: each product ships from its own)."""
    return zlib.crc32(f"product-{product_id}".encode()) % (GRID_SIDE * GRID_SIDE)


def zone_hubs(zone: int) -> range:
    """The delivery hubs of a zone (1..ZONES): its band of rows of the grid."""
    rows = GRID_SIDE // ZONES
    return range((zone - 1) * rows * GRID_SIDE, zone * rows * GRID_SIDE)


def price_cents(route_cost: int) -> int:
    """The carrier's tariff: a base fee and a price per unit of route cost."""
    return 499 + 3 * route_cost


def cheapest_route_cost(product_id: int, zone: int) -> int:
    """The work: Dijkstra from the supplier's hub over the whole network (networkx's
    `_dijkstra_multisource` is where the CPU goes), then the zone's farthest delivery
    hub (a zone's price covers every address in it)."""
    import networkx as nx  # loaded by carrier_network() already: a dict lookup

    costs = nx.single_source_dijkstra_path_length(
        carrier_network(), origin_hub(product_id), weight="cost"
    )
    return int(max(costs[hub] for hub in zone_hubs(zone)))


# --- faulty -----------------------------------------------------------------


class RecomputedQuotes:
    """Search the network on every request: a known answer recomputed, the GIL held."""

    def __init__(self, params: QuoteParams) -> None:
        pass

    def quote(self, product_id: int, zone: int) -> int:
        return price_cents(cheapest_route_cost(product_id, zone))


# --- fixed ------------------------------------------------------------------


class CachedQuotes:
    """Compute each (product, zone) once per rate-card period, bounded (cachetools).

    `TTLCache` evicts the least recently used entry beyond `cache_entries` and any
    entry older than the TTL; the condition makes concurrent misses on one key wait
    for the first one's result instead of computing it again (no stampede). Several
    workers each keep their own: share it in Redis when that matters (see no-cache).
    """

    def __init__(self, params: QuoteParams) -> None:
        self.cache: cachetools.TTLCache[tuple[int, int], int] = cachetools.TTLCache(
            maxsize=params.cache_entries, ttl=params.cache_ttl_seconds
        )
        condition = threading.Condition()
        self._quote = cachetools.cached(self.cache, lock=condition, condition=condition)(
            self._compute
        )

    @staticmethod
    def _compute(product_id: int, zone: int) -> int:
        return price_cents(cheapest_route_cost(product_id, zone))

    def quote(self, product_id: int, zone: int) -> int:
        return self._quote(product_id, zone)


def _signature(s: Signs) -> Finding | None:
    """Pure computation in the event loop: CPU per request and loop lag high
    (Signs.cpu_heavy) with no database or upstream to wait on and small answers."""
    if (s.number("db_queries_per_request") or 0.0) >= 0.5 or s.number("upstream_calls_per_request"):
        return None
    if (s.number("bytes_per_request") or 0.0) > 100_000 or (s.number("app_cpu_cores") or 0.0) < 0.5:
        return None
    score = s.cpu_heavy()
    if s.peak_memory():  # a big peak says the work is building something large
        score *= 0.5
    return finding(
        "cpu-bound",
        score,
        (
            Clue("app CPU per request", s.number("cpu_ms_per_served"), "< 5", "ms"),
            Clue("event-loop lag p99", s.number("event_loop_lag_p99_ms"), "< 100", "ms"),
            Clue("DB queries per request", s.number("db_queries_per_request")),
        ),
        confirm="profile=py-spy",
    )


SCENARIO: Scenario[QuoteCalculator, QuoteParams] = Scenario(
    signature=_signature,
    slug="cpu-bound",
    title="Endpoint slow from heavy pure-Python work, recomputed per request",
    seeds=(1, 17),
    kind="fault",
    summary=(
        "A shipping quote runs networkx's Dijkstra over the carrier's 10,000-hub lane network "
        "on every request although its inputs repeat; the worker's CPU saturates and p95 "
        "follows. Cached per (product, zone) with a TTL (cachetools), it runs once per input."
    ),
    faulty=RecomputedQuotes,
    fixed=CachedQuotes,
    params=QuoteParams,
    workload="quotes",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="app_cpu_ms_per_request",
        op=">",
        # The requirement: serving a quote whose answer is already known costs well under
        # 5 ms of CPU (routing, validation, JSON); one route search costs ~15-30 ms.
        threshold=5.0,
        description="each request burns milliseconds of CPU computing a known answer",
    ),
    answers=(
        Answer(
            "Your FastAPI endpoint suddenly becomes slow in production. How will you diagnose it?",
            """\
When latency rises with load and the app's CPU is at a core, profile it under load:
`make fault=cpu-bound load profile=py-spy`. The report quotes py-spy's hottest frames:
networkx's Dijkstra under `cheapest_route_cost`, under the shipping-quote route. The
numbers agree: {faulty.app_cpu_ms_per_request} ms of CPU per request (fixed:
{fixed.app_cpu_ms_per_request} ms), p95 {faulty.p95_ms} ms against {fixed.p95_ms} ms,
and no time in the DB or upstream. Compare both variants with
`make fault=cpu-bound compare`.""",
        ),
        Answer(
            "How do you check whether the issue is DB latency or code latency?",
            """\
CPU per request and the DB share say it: code latency raises
`app_cpu_ms_per_request` ({faulty.app_cpu_ms_per_request} ms here, {ratio.app_cpu_ms_per_request}
times the fixed variant's) with `db_time_share` near zero; DB latency does the opposite
(db-latency: CPU flat, DB share above 80%). The `Server-Timing` header splits each response
the same way, and py-spy names the function.""",
        ),
        Answer(
            "How do you use async to improve performance here?",
            """\
It does not, for CPU work: an `async def` that computes never yields, and a threadpool
is serialised by the GIL. Do less work (the fixed variant caches the quote, a pure function
of product, zone and rate card), or move it off the loop to a process pool sized to the
cores (`loop.run_in_executor(ProcessPoolExecutor(os.cpu_count()), ...)`) when its inputs do
not repeat (a password hash with a random salt). Async is for waiting (blocking-call).""",
        ),
        Answer(
            "Your API repeatedly calculates a heavy operation. How do you cache it?",
            """\
Cache the result by the inputs that determine it, with a maintained cache: the fix is a
`cachetools.TTLCache` keyed by (product, zone), so the Dijkstra runs once per input per TTL;
CPU per request falls from {faulty.app_cpu_ms_per_request} ms to
{fixed.app_cpu_ms_per_request} ms and throughput goes from {faulty.rps} to {fixed.rps} req/s.
Bound it (maxsize) so that the cache cannot become memory-leak.""",
        ),
        Answer(
            "Why Redis over in-memory?",
            """\
In-memory (cachetools) is right for this one: no network hop, and each worker computing
a quote once is cheap. Redis wins when workers or instances should share one computation,
the value must survive a deploy, or memory must be bounded in one place (no-cache measures
it for an expensive aggregate, with a stampede lock).""",
        ),
        Answer(
            "How long will you cache?",
            """\
As long as the answer stays true: here a rate card's validity (the TTL in the
scenario's parameters), and never longer than you would tolerate serving a stale quote.
Invalidate on the write that changes the input (a new rate card) when staleness is not
acceptable, and add jitter to expiries written together so that they do not all expire
at once.""",
        ),
    ),
    diagnosis="""\
**What you see.** App CPU near 100% of a core (report: CPU plot) while the DB
and upstream shares are ~0; `app_cpu_ms_per_request` in the tens of ms; p95
rises with concurrency as requests queue for the GIL.

**Find it.** `make fault=cpu-bound load profile=py-spy`: the report quotes
py-spy's hottest functions, and networkx's `_dijkstra_multisource`
(networkx/algorithms/shortest_paths/weighted.py) tops the list; the flamegraph
shows it under `cheapest_route_cost` (faults/cpu_bound.py) under
`quote_shipping`. `py-spy top --pid` shows the same live. The hot frame is in a
library, as it usually is: read up the stack to the caller that asks too often.

**Follow-ups.** Async does not help CPU-bound work (it never yields); a
threadpool does not either (the GIL). Cache results whose inputs repeat (here:
the answer is a pure function of product, zone and the rate card, so a TTL as
long as a rate card is valid; Redis over in-memory when several workers should
share them, see no-cache). Move the work to a process pool
(`ProcessPoolExecutor` + `loop.run_in_executor`) or a job queue when the
inputs do not repeat (password hashing with a random salt cannot be cached),
and optimise the hot function last (a bidirectional search, a precomputed
table, a C implementation such as scipy.sparse.csgraph) once the profile says so.
""",
)
