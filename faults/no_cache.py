"""no-cache (seeds 17, 10): a heavy result recomputed on every request.

Seam: `BestsellerCache`, how `GET /catalog/bestsellers` gets its ranking
(`seams.pick(no_cache.SCENARIO)`).
The ranking changes slowly (orders trickle in), yet every request recomputes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding

__all__ = [
    "SCENARIO",
    "AlwaysRecompute",
    "BestsellerCache",
    "BestsellerParams",
    "RedisCacheWithLock",
]

CACHE_NAME = "bestsellers"
KEY = "catalog:bestsellers:v1"
LOCK_KEY = f"{KEY}:lock"

log = logging.getLogger("faults.no_cache")


class BestsellerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int = Field(10, ge=1, le=86_400, description="fixed: how long a ranking lives")
    lock_seconds: float = Field(5.0, gt=0, le=600, description="fixed: recompute lock lifetime")
    wait_seconds: float = Field(
        2.0, ge=0, le=60, description="fixed: how long others wait for the recompute"
    )


class BestsellerCache(Protocol):
    """The seam: the ranking's bytes, from Redis (None: not configured) or from `compute`."""

    async def get(self, redis: Redis | None, compute: Callable[[], Awaitable[bytes]]) -> bytes: ...


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def count_computation() -> None:
    # Here, not at the top: listing the catalogue never imports the app.
    from target_app import metrics

    metrics.CACHE_REQUESTS.labels(CACHE_NAME, "computed").inc()


# --- faulty -----------------------------------------------------------------


class AlwaysRecompute:
    """No cache: every request pays the full computation."""

    def __init__(self, params: BestsellerParams) -> None:
        pass

    async def get(self, redis: Redis | None, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        count_computation()
        return await compute()


# --- fixed ------------------------------------------------------------------


class RedisCacheWithLock:
    """Cache-aside in Redis with a TTL, and stampede protection.

    On a miss, one request takes a short lock and recomputes; the others wait
    for the new value instead of all recomputing at once (a stampede: 50
    clients, 50 identical computations, the moment the key expires). The lock
    is redis-py's `Lock`: `SET key:lock <random token> NX PX`, released by a Lua
    script that deletes the key only if it still holds this request's token, in
    one atomic step. A holder slower than the lock's lifetime finds its lock
    expired (and maybe another request's now) and leaves it alone; a GET then
    DEL would delete the other request's lock between the two commands.
    """

    def __init__(self, params: BestsellerParams) -> None:
        self.ttl = params.ttl_seconds
        self.lock_seconds = params.lock_seconds
        self.wait = params.wait_seconds

    async def get(self, redis: Redis | None, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        from target_app import metrics

        if redis is None:  # no Redis configured: correct, just uncached
            count_computation()
            return await compute()
        cached = await redis.get(KEY)
        if cached is not None:
            metrics.CACHE_REQUESTS.labels(CACHE_NAME, "hit").inc()
            return _as_bytes(cached)
        metrics.CACHE_REQUESTS.labels(CACHE_NAME, "miss").inc()
        # One Lock object per request: its token is this request's alone.
        lock = Lock(redis, LOCK_KEY, timeout=self.lock_seconds, blocking=False, thread_local=False)
        if await lock.acquire():
            try:
                # The previous holder may have stored the value between our miss and now.
                cached = await redis.get(KEY)
                if cached is not None:
                    return _as_bytes(cached)
                count_computation()
                value = await compute()
                await redis.set(KEY, value, ex=self.ttl)
                return value
            finally:
                try:
                    await lock.release()
                except LockNotOwnedError:  # expired while we computed: not ours to delete
                    log.warning(
                        "bestseller recompute outlived its lock",
                        extra={"fields": {"lock_seconds": self.lock_seconds}},
                    )
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            cached = await redis.get(KEY)
            if cached is not None:
                return _as_bytes(cached)
        count_computation()  # the lock holder is late: better late than never
        return await compute()


def _signature(s: Signs) -> Finding | None:
    """The same result recomputed for every request: CPU per request and loop lag
    high (Signs.cpu_heavy), a query per request that costs the database little."""
    q = s.number("db_queries_per_request") or 0.0
    share = s.number("db_time_share") or 0.0
    if q < 0.5 or share >= 0.2:
        return None
    score = s.cpu_heavy()
    return finding(
        "no-cache",
        score,
        (
            Clue("app CPU per request", s.number("cpu_ms_per_served"), "< 5", "ms"),
            Clue("event-loop lag p99", s.number("event_loop_lag_p99_ms"), "< 100", "ms"),
            Clue("DB queries per request", q),
            Clue("share of request time in the DB", share),
        ),
        confirm="profile=py-spy",
    )


SCENARIO: Scenario[BestsellerCache, BestsellerParams] = Scenario(
    signature=_signature,
    slug="no-cache",
    title="A heavy operation recalculated on every request (cache it, in Redis)",
    seeds=(17, 10),
    kind="fault",
    summary=(
        "The bestseller ranking (an aggregate plus scoring in Python) is recomputed per "
        "request. Cached in Redis with a TTL and a recompute lock, it runs once per TTL "
        "window however many clients ask at once."
    ),
    faulty=AlwaysRecompute,
    fixed=RedisCacheWithLock,
    params=BestsellerParams,
    requires=("redis", "toxiproxy"),
    workload="bestsellers",
    default_load={"users": 50, "duration": "30s"},
    symptom=Symptom(
        metric="app_cpu_ms_per_request",
        op=">",
        threshold=5.0,
        description="every request pays for the same computation again",
    ),
    answers=(
        Answer(
            "Your API repeatedly calculates a heavy operation. How do you cache it?",
            """\
Cache the result the endpoint serves, keyed by its inputs, in Redis with a TTL, and let
one request recompute an expired key under a lock (redis-py's `Lock`) while the others
wait briefly. The bestseller ranking costs {faulty.app_cpu_ms_per_request} ms of CPU per
request recomputed; cached, {fixed.app_cpu_ms_per_request} ms, and p95 goes from
{faulty.p95_ms} ms to {fixed.p95_ms} ms under the scenario's load. The computations are counted from
the database's side (the aggregate statements the engine ran), not by the cache.
Reproduce with `make fault=no-cache compare` (needs `make up`).""",
        ),
        Answer(
            "Why Redis over in-memory?",
            """\
One computation per TTL for every worker and instance instead of one per process, a
value that survives a deploy, memory bounded in one place (`maxmemory`), and a lock every
worker can see, which is what stops a stampede. In-memory is fine for cheap values per
process (cpu-bound's quotes).""",
        ),
        Answer(
            "How long will you cache?",
            """\
As long as readers tolerate a stale ranking (here 10 s, a parameter of the scenario),
shorter when a write must show at once (then invalidate on that write), and with jitter on
expiries written together. Measure the hit ratio after choosing it:
`cache_requests_total{cache="bestsellers"}` by result.""",
        ),
        Answer(
            "A DB query takes 10 seconds. How will you optimize it from API side?",
            """\
From the API side: do not run it per request. Cache its result (this scenario: once per
TTL window however many clients ask), make it cheaper (an index, fewer round trips:
slow-query, n-plus-one), or precompute it off the request path. Here caching takes p95 from
{faulty.p95_ms} ms to {fixed.p95_ms} ms.""",
        ),
        Answer(
            "How do you cache queries?",
            """\
By the endpoint's result and inputs, with a TTL matched to staleness, and a lock so that
one request recomputes an expired key (the fixed variant). Cache the serialised answer, not
ORM objects, and invalidate on the writes that change it when staleness is not acceptable.""",
        ),
        Answer(
            "When to denormalize?",
            """\
When the same aggregate is read far more often than the data changes and even a cached
recomputation per TTL is too costly: keep it in a column or a materialised view updated by
the write path or a schedule. A cache is simpler to drop; denormalised data must be kept
right on every write.""",
        ),
    ),
    diagnosis="""\
**What you see.** CPU per request high and flat, p95 climbing with users, and
`cache_requests_total{cache="bestsellers",result="computed"}` growing as fast
as requests. With the fix, "computed" grows by one per TTL window and the rest
are hits.

**How do you cache queries? (seed 10)** Cache the *result* the endpoint
serves, keyed by its inputs, with a TTL matched to how stale it may be;
invalidate on the writes that change it when staleness is not acceptable.

**Why Redis over in-memory? (seed 17)** One computation per TTL for all
workers and instances, not one per process; survives deploys; bounded by
Redis' own `maxmemory`. **How long?** As long as readers tolerate (here 10 s);
add jitter to expiries written together.

**Stampede protection.** When a hot key expires, let one request recompute
under a short lock while the others wait briefly for the new value (or serve
the stale one). Take a maintained lock, not a hand-written one: redis-py's
`redis.lock(name, timeout=5, blocking=False)` is `SET key:lock token NX PX
5000`, and its `release()` deletes the key only if it still holds the
caller's token, atomically (a Lua script). A `GET` then `DEL` is two
commands: the lock can expire and be taken by another request between them,
and the slow holder deletes the newcomer's lock.

**Counting computations.** `cache_requests_total{result="computed"}` is the
seam's own count; the contract test counts what the computation cannot help
doing, the SQL statements the engine executed (`db_query_duration_seconds_count`,
one aggregate per computation).
""",
)
