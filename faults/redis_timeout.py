"""redis-timeout: the cache became the slowest thing in the request.

Network condition (both variants): 2 s of latency on the Redis link, as when
Redis swaps or its network degrades. Seam: `StatsCache`, the cache policy of
`GET /catalog/stats` (`seams.pick(redis_timeout.SCENARIO)`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from faults._contract import Answer, Scenario, Symptom, Toxic
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = ["SCENARIO", "BoundedCache", "CacheParams", "StatsCache", "TrustingCache"]

log = logging.getLogger(__name__)
T = TypeVar("T")
CACHE_NAME = "catalog_stats"


class CacheParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int = Field(30, ge=1, le=86_400, description="how long a result is cached")
    timeout_ms: float = Field(50, gt=0, le=10_000, description="fixed: budget of one Redis call")
    bypass_seconds: float = Field(
        5, ge=0, le=600, description="fixed: skip Redis for this long after it failed"
    )


class StatsCache(Protocol):
    """The seam: the statistics' bytes, from Redis when it answers or from `compute`."""

    async def get_or_compute(
        self, redis: Redis, key: str, compute: Callable[[], Awaitable[bytes]]
    ) -> bytes: ...


# --- faulty -----------------------------------------------------------------


class TrustingCache:
    """Cache-aside that trusts Redis to be fast: every request waits for it."""

    def __init__(self, params: CacheParams) -> None:
        self.ttl = params.ttl_seconds

    async def get_or_compute(
        self, redis: Redis, key: str, compute: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app import metrics

        cached = await redis.get(key)
        metrics.CACHE_REQUESTS.labels(CACHE_NAME, "hit" if cached else "miss").inc()
        if cached is not None:
            return cached if isinstance(cached, bytes) else str(cached).encode()
        value = await compute()
        await redis.set(key, value, ex=self.ttl)
        return value


# --- fixed ------------------------------------------------------------------


class BoundedCache:
    """The cache is an optimisation, never a dependency.

    Each Redis call gets a small budget; on timeout or error the request goes
    to the source, and Redis is bypassed for a while instead of being asked
    (and waited for) again by every request.
    """

    def __init__(self, params: CacheParams) -> None:
        self.ttl = params.ttl_seconds
        self.timeout = params.timeout_ms / 1000
        self.bypass_seconds = params.bypass_seconds
        self.bypass_until = 0.0

    async def _bounded(self, call: Awaitable[T]) -> T | None:
        if time.monotonic() < self.bypass_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except (TimeoutError, RedisError, OSError) as exc:
            from target_app import metrics

            self.bypass_until = time.monotonic() + self.bypass_seconds
            log.warning("redis unavailable, bypassing it for %.0f s: %r", self.bypass_seconds, exc)
            metrics.CACHE_REQUESTS.labels(CACHE_NAME, "error").inc()
            return None

    async def get_or_compute(
        self, redis: Redis, key: str, compute: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        from target_app import metrics

        cached = await self._bounded(redis.get(key))
        if cached is not None:
            metrics.CACHE_REQUESTS.labels(CACHE_NAME, "hit").inc()
            return cached if isinstance(cached, bytes) else str(cached).encode()
        metrics.CACHE_REQUESTS.labels(CACHE_NAME, "miss").inc()
        value = await compute()
        await self._bounded(redis.set(key, value, ex=self.ttl))
        return value


def _signature(s: Signs) -> Finding | None:
    """Requests that wait on the cache: over a second each, with the app idle (under
    0.3 cores), hardly any time in the database and no upstream calls."""
    if s.counter("cache_requests_total") <= 0 or (s.number("db_time_share") or 0.0) >= 0.2:
        return None
    if s.number("upstream_calls_per_request") or (s.number("app_cpu_cores") or 0.0) >= 0.3:
        return None
    score = strength(s.number("p50_ms"), 1000.0)
    return finding(
        "redis-timeout",
        score,
        (
            Clue("client p50", s.number("p50_ms"), "< 1000", "ms"),
            Clue("share of request time in the DB", s.number("db_time_share")),
            Clue("cores the app kept busy", s.number("app_cpu_cores")),
        ),
    )


SCENARIO: Scenario[StatsCache, CacheParams] = Scenario(
    signature=_signature,
    environment="Redis slow or unreachable",
    slug="redis-timeout",
    title="Redis is slow and every request waits for the cache",
    seeds=(17,),
    kind="network",
    summary=(
        "2 s of latency on the Redis link. A cache-aside without a timeout makes every "
        "request wait for Redis (p50 >= 2 s); a 50 ms budget per call, a fall back to the "
        "source and a bypass window keep p50 at the cost of the computation."
    ),
    faulty=TrustingCache,
    fixed=BoundedCache,
    params=CacheParams,
    requires=("redis", "toxiproxy"),
    toxics=(Toxic("redis", "latency", {"latency": 2000, "jitter": 0}),),
    workload="catalog",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="p50_ms",
        op=">",
        threshold=1000.0,
        description="requests wait for the cache longer than computing the answer takes",
    ),
    diagnosis="""\
**What you see.** p50 of `/catalog/stats` at >= 2 s while CPU and the DB are
idle; Server-Timing shows neither `db` nor `upstream` time: the wait is in the
app, on the Redis socket (`py-spy dump` shows the event loop idle and the
request awaiting `redis.asyncio` reads). `cache_requests_total{cache="catalog_stats"}`
keeps counting hits: the cache *works*, it is just slower than the source.

**Why Redis over in-memory (seed 17).** Shared by every worker and instance
(one computation per TTL, not one per process), survives deploys, bounded by
its own `maxmemory` policy instead of the app's RSS. The price is a network
hop, which must be bounded like any other dependency.

**How long to cache.** As long as the data may be stale for its readers (here
30 s of catalogue statistics), with expiry jitter if many keys are written at
once; invalidate on writes where staleness is not acceptable.

**Fix.** A per-call timeout well under the request budget
(`socket_timeout` / `asyncio.timeout`), fall back to the source on any cache
error, and stop asking a sick cache for a few seconds (a tiny circuit breaker).
""",
    answers=(
        Answer(
            question="Your API repeatedly calculates a heavy operation. How do you cache it?",
            answer="""\
Use cache-aside in Redis. Build the key from the inputs, and on a miss compute
the value, store it with a TTL and return it. Add a lock so that a miss is
computed once, not by every waiting request (no-cache shows the gain and the
stampede).

This scenario adds the part that is easy to forget: the cache is a network
dependency, and it must never be slower than the source. `make
fault=redis-timeout compare` puts 2 s of latency on the Redis link in both
variants.

- **Faulty (`TrustingCache`):** it awaits every `GET`, so every hit waits for
  the link. p50 is {faulty.p50_ms} ms, and throughput is {faulty.rps} req/s
  against {fixed.rps}.
- **Fixed (`BoundedCache`):** each Redis call gets a 50 ms budget
  (`asyncio.timeout`). On a timeout or error it computes from the source and
  skips Redis for `bypass_seconds`. p50 is {fixed.p50_ms} ms and p99
  {fixed.p99_ms} ms. Error rates: {faulty.error_rate} faulty,
  {fixed.error_rate} fixed. Both answer; only one is fast.

How to spot it: CPU and the database are idle
(`app_cpu_cores` {faulty.app_cpu_cores}), and Server-Timing puts the time in
`app`, not in `db` or `upstream`, because the app does not time its Redis calls
separately. In Grafana, "Lab memory", the panel "Cache look-ups by result" keeps
showing *hits*: the cache works, it is just slow. `py-spy dump` shows the loop
idle, with requests awaiting `redis.asyncio` reads.
""",
        ),
        Answer(
            question="Why Redis over in-memory?",
            answer="""\
- **One copy:** with N workers and M instances, an in-process cache computes
  each value N x M times per TTL and holds N x M copies, one per worker's RSS.
  Redis computes it once and holds one copy.
- **Survives restarts:** the cache outlives deploys and worker restarts (gunicorn
  `--max-requests`).
- **Bounded outside the app:** `maxmemory` with an eviction policy caps it,
  where an unbounded dict in the app is the memory-leak scenario.
- **Correct invalidation:** deleting a key invalidates it for every worker at
  once.

The price is a network hop on every look-up, and a new way to fail. That
failure is what this scenario measures: a slow Redis made the faulty p50
{faulty.p50_ms} ms. An in-process `cachetools.TTLCache` is still the right tool
for small, per-process data (parsed config, feature flags), or as a tiny L1 in
front of Redis.

The lab does not race in-memory against Redis head to head. single-worker shows
what a per-process copy costs.
""",
        ),
        Answer(
            question="How long will you cache?",
            answer="""\
As long as readers may see stale data. The cost of the computation does not
set the TTL. Here `ttl_seconds` is 30 for catalogue statistics.

- **Jitter:** add a few seconds of random jitter when many keys are written
  together, so they do not expire together.
- **Strict freshness:** where staleness is not acceptable (prices, stock),
  delete or overwrite the key in the same code path that commits the change.
- **Expensive values:** serve the stale value while one request recomputes
  it (stale-while-revalidate, under the lock).
- **The cache's own failure:** the fixed variant adds a second duration,
  `bypass_seconds` (5): how long to stop asking a Redis that just failed.
  Longer spares a sick Redis and the requests. Shorter notices recovery
  sooner.

The lab does not measure TTLs against each other. You can try one with
`lab run redis-timeout --param ttl_seconds=N`. With this toxic the TTL does not
change the faulty result, because every hit still waits the 2 s.
""",
        ),
    ),
)
