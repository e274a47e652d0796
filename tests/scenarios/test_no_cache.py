"""no-cache: recomputed per request vs once per TTL window, even under a stampede.

Computations are counted outside the seam: the SQL statements the app's engine
executed (`db_query_duration_seconds_count`, from SQLAlchemy's cursor events in
target_app/db.py). The ranking is one aggregate query and its scoring, so every
computation executes exactly one statement, whoever decided to compute, and no
cache hit executes any; the seam cannot move that count without running the
query. The only other statement of a run is /readyz's `SELECT 1`, subtracted.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.scenarios.contract import direct_redis_url, last_sample, prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def _computations(run_dir: Path) -> float:
    """Bestseller aggregates the engine executed: all statements but /readyz's."""
    statements = last_sample(run_dir, "db_query_duration_seconds_count")
    ready = last_sample(run_dir, "http_requests_total", "method=GET|route=/readyz|status=200")
    return statements - ready


def test_no_cache_computes_once_per_ttl_window_with_50_clients(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("redis")
    faulty, fixed = prove("no-cache", tmp_path, env, duration="15s", users=50)
    faulty_runs = _computations(tmp_path / faulty["run_id"])
    fixed_runs = _computations(tmp_path / fixed["run_id"])
    assert faulty_runs >= faulty["requests"]  # every request recomputed
    # TTL 10 s over a 15 s load: the windows starting at 0 s and 10 s, maybe one
    # more at the edge, whatever the 50 concurrent clients do.
    assert 1 <= fixed_runs <= math.ceil(15 / 10) + 1, fixed_runs
    assert fixed["p95_ms"] * 5 < faulty["p95_ms"]


# --- the lock itself, in-process against the lab's Redis ----------------------------


def test_two_concurrent_misses_compute_once(lab_services: Callable[..., dict[str, str]]) -> None:
    from redis.asyncio import Redis

    from faults.no_cache import KEY, LOCK_KEY, BestsellerParams, RedisCacheWithLock

    lab_services("redis")
    computed: list[str] = []  # counted by the computation, outside the seam

    async def scenario() -> list[bytes]:
        redis = Redis.from_url(direct_redis_url())
        try:
            await redis.delete(KEY, LOCK_KEY)
            cache = RedisCacheWithLock(BestsellerParams())

            async def compute() -> bytes:
                computed.append("run")
                await asyncio.sleep(0.3)  # long enough for the second miss to find the lock
                return b"ranking"

            values = await asyncio.gather(*(cache.get(redis, compute) for _ in range(2)))
            assert await redis.exists(LOCK_KEY) == 0  # released by its holder
            return list(values)
        finally:
            await redis.delete(KEY, LOCK_KEY)
            await redis.aclose()

    assert asyncio.run(scenario()) == [b"ranking", b"ranking"]
    assert computed == ["run"]


def test_an_expired_lock_is_not_released_by_its_old_holder(
    lab_services: Callable[..., dict[str, str]],
) -> None:
    """A holds the lock for 0.2 s and computes for 0.6 s; B misses at 0.35 s, takes the
    expired lock and computes. When A is done, A's release must leave B's lock alone
    (a GET-then-DEL release would delete it); B's own release then removes it."""
    from redis.asyncio import Redis

    from faults.no_cache import KEY, LOCK_KEY, BestsellerParams, RedisCacheWithLock

    lab_services("redis")

    async def scenario() -> None:
        redis = Redis.from_url(direct_redis_url())
        try:
            await redis.delete(KEY, LOCK_KEY)
            slow = RedisCacheWithLock(BestsellerParams(lock_seconds=0.2, wait_seconds=0))
            other = RedisCacheWithLock(BestsellerParams(lock_seconds=30, wait_seconds=0))
            b_may_finish = asyncio.Event()

            async def compute_a() -> bytes:
                await asyncio.sleep(0.6)
                return b"from A"

            async def compute_b() -> bytes:
                await b_may_finish.wait()
                return b"from B"

            a = asyncio.create_task(slow.get(redis, compute_a))
            await asyncio.sleep(0.35)  # A's lock has expired; A is still computing
            assert await redis.exists(LOCK_KEY) == 0
            b = asyncio.create_task(other.get(redis, compute_b))
            await asyncio.sleep(0.1)
            b_token = await redis.get(LOCK_KEY)
            assert b_token is not None  # B holds the lock now
            assert await a == b"from A"  # A is done and has tried to release
            assert await redis.get(LOCK_KEY) == b_token, "A released B's lock"
            assert await redis.pttl(LOCK_KEY) > 0
            b_may_finish.set()
            assert await b == b"from B"
            assert await redis.exists(LOCK_KEY) == 0  # B released its own lock
        finally:
            await redis.delete(KEY, LOCK_KEY)
            await redis.aclose()

    asyncio.run(scenario())


def test_the_release_has_no_window_between_check_and_delete(
    lab_services: Callable[..., dict[str, str]],
) -> None:
    """A release that reads the lock (GET) and then deletes it (DEL) is two commands: if
    the lock expires between them and B takes it, the DEL deletes B's lock. Here every
    GET of the lock key is followed by exactly that (the lock expires, B takes it) before
    its answer reaches the caller; the atomic release must leave B's lock in place."""
    from redis.asyncio import Redis

    from faults.no_cache import KEY, LOCK_KEY, BestsellerParams, RedisCacheWithLock

    lab_services("redis")

    class ExpiresAfterEachLockRead(Redis):
        lock_reads = 0

        async def get(self, name: Any) -> Any:
            value = await super().get(name)
            if name == LOCK_KEY and value is not None:
                self.lock_reads += 1
                await self.delete(LOCK_KEY)  # A's lock expires...
                await self.set(LOCK_KEY, b"B's token", px=30_000)  # ...and B takes it
            return value

    async def scenario() -> None:
        redis = ExpiresAfterEachLockRead.from_url(direct_redis_url())
        assert isinstance(redis, ExpiresAfterEachLockRead)
        probe = Redis.from_url(direct_redis_url())  # a plain client, to look without the hook
        try:
            await redis.delete(KEY, LOCK_KEY)
            cache = RedisCacheWithLock(BestsellerParams(lock_seconds=30))

            async def compute() -> bytes:
                return b"from A"

            assert await cache.get(redis, compute) == b"from A"
            held = await probe.get(LOCK_KEY)
            if redis.lock_reads:  # the release read the lock: B's must have survived it
                assert held == b"B's token", "the release deleted the lock B took"
            else:  # an atomic release reads nothing: A's own lock is simply gone
                assert held is None
        finally:
            await redis.delete(KEY, LOCK_KEY)
            await redis.aclose()
            await probe.aclose()

    asyncio.run(scenario())
