"""upstream-flaky's circuit breaker (purgatory, one trial at a time when half-open).

Each test uses a dependency name of its own, so the state it reads from
`circuit_breaker_state{dependency}` (the process's Prometheus registry) is its own.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prometheus_client import REGISTRY
from purgatory.domain.model import OpenedState

from faults.upstream_flaky import Breaker
from target_app.clients.upstream import (
    UpstreamCircuitOpen,
    UpstreamRejected,
    UpstreamRetryable,
)

pytestmark = pytest.mark.unit

_names = itertools.count()
OPEN_S = 0.2


def breaker(failures: int = 3) -> Breaker:
    return Breaker(f"dep-{next(_names)}", failures, OPEN_S)


def gauge(b: Breaker) -> float | None:
    return REGISTRY.get_sample_value("circuit_breaker_state", {"dependency": b.dependency})


async def ok() -> str:
    return "ok"


async def transient() -> str:
    raise UpstreamRetryable("reset")


async def fail(b: Breaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(UpstreamRetryable):
            await b.call(transient)


def test_it_opens_at_the_threshold_and_then_fails_fast_without_calling() -> None:
    async def go() -> None:
        b = breaker(failures=3)
        assert gauge(b) == 0
        await fail(b, 2)
        assert await b.state() == "closed" and gauge(b) == 0
        await fail(b, 1)
        assert await b.state() == "opened" and gauge(b) == 2
        called = 0

        async def counted() -> str:
            nonlocal called
            called += 1
            return "ok"

        for _ in range(5):
            with pytest.raises(UpstreamCircuitOpen):
                await b.call(counted)
        assert called == 0

    asyncio.run(go())


def test_consecutive_failures_count_and_a_success_resets_them() -> None:
    async def go() -> None:
        b = breaker(failures=3)
        for _ in range(5):
            await fail(b, 2)
            assert await b.call(ok) == "ok"
        assert await b.state() == "closed"

    asyncio.run(go())


def test_a_rejected_request_is_the_provider_working_not_failing() -> None:
    async def rejected() -> str:
        raise UpstreamRejected("409", 409)

    async def go() -> None:
        b = breaker(failures=2)
        for _ in range(5):
            with pytest.raises(UpstreamRejected):
                await b.call(rejected)
        assert await b.state() == "closed"

    asyncio.run(go())


def test_half_open_lets_exactly_one_trial_through_and_closes_on_its_success() -> None:
    async def go() -> None:
        b = breaker(failures=1)
        await fail(b, 1)
        assert gauge(b) == 2
        await asyncio.sleep(OPEN_S + 0.05)
        release = asyncio.Event()
        trials = 0

        async def trial() -> str:
            nonlocal trials
            trials += 1
            await release.wait()
            return "ok"

        calls = [asyncio.create_task(b.call(trial)) for _ in range(10)]
        await asyncio.sleep(0.01)  # every call has reached the breaker
        assert trials == 1
        assert await b.state() == "half-opened" and gauge(b) == 1
        refused = [c for c in calls if c.done()]
        assert len(refused) == 9
        assert all(isinstance(c.exception(), UpstreamCircuitOpen) for c in refused)
        release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert results.count("ok") == 1
        assert await b.state() == "closed" and gauge(b) == 0
        assert await b.call(ok) == "ok"

    asyncio.run(go())


def test_a_failed_trial_opens_it_again() -> None:
    async def go() -> None:
        b = breaker(failures=1)
        await fail(b, 1)
        await asyncio.sleep(OPEN_S + 0.05)
        await fail(b, 1)  # the trial
        assert await b.state() == "opened" and gauge(b) == 2
        with pytest.raises(UpstreamCircuitOpen):
            await b.call(ok)

    asyncio.run(go())


def test_a_trial_cancelled_by_the_deadline_counts_as_a_failure() -> None:
    async def hangs() -> str:
        await asyncio.sleep(10)
        return "late"

    async def go() -> None:
        b = breaker(failures=1)
        await fail(b, 1)
        await asyncio.sleep(OPEN_S + 0.05)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await b.call(hangs)
        assert await b.state() == "opened" and gauge(b) == 2
        assert not b.trial_in_flight

    asyncio.run(go())


def test_refusing_calls_keeps_no_traceback_alive() -> None:
    """purgatory raises one OpenedState object on every refused call; each raise of
    the same object would grow its traceback: the gate drops it every time."""

    async def go() -> None:
        b = breaker(failures=1)
        await fail(b, 1)
        for _ in range(100):
            with pytest.raises(UpstreamCircuitOpen):
                await b.call(ok)
        state = (await b.factory.get_breaker(b.dependency)).context._state
        assert isinstance(state, OpenedState)
        assert state.__traceback__ is None

    asyncio.run(go())
