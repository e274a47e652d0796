"""upstream-flaky's retry policy and the client's failure classes, without a network.

The client is driven through httpx's MockTransport, so what is retried is
decided from real status codes, headers and transport errors; the policy's
sleeps are recorded instead of slept.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from faults.upstream_flaky import RetryParams, RetryWithBreakerPolicy
from target_app.clients.upstream import (
    UpstreamCircuitOpen,
    UpstreamClient,
    UpstreamError,
    UpstreamRejected,
    UpstreamRetryable,
    is_retryable,
    parse_retry_after,
)

pytestmark = pytest.mark.unit

Handler = Callable[[httpx.Request], httpx.Response]


class Provider:
    """A scripted provider: answers (or raises) one scripted step per request."""

    def __init__(self, *steps: int | type[Exception] | tuple[int, dict[str, str]]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else 201
        if isinstance(step, type):
            raise step("scripted", request=request)  # type: ignore[call-arg]
        code, headers = step if isinstance(step, tuple) else (step, {})
        return httpx.Response(code, json={"id": "pay_1", "status": "captured"}, headers=headers)


def client_for(provider: Handler) -> UpstreamClient:
    client = UpstreamClient("http://provider.test")
    client.http = httpx.AsyncClient(
        base_url="http://provider.test", transport=httpx.MockTransport(provider)
    )
    return client


def policy(**params: Any) -> tuple[RetryWithBreakerPolicy, list[float]]:
    # A breaker that cannot open here: these tests are about the retries.
    made = RetryWithBreakerPolicy(RetryParams(breaker_failures=10_000, **params))
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    made.sleep = record
    return made, slept


def charge_through(retries: RetryWithBreakerPolicy, provider: Provider) -> Any:
    client = client_for(provider)

    async def go() -> Any:
        try:
            return await retries.call(
                f"payments-{id(provider)}", lambda: client.charge(7, "12.50", "order-7-12.50")
            )
        finally:
            await client.http.aclose()

    return asyncio.run(go())


# --- what the client classes as retryable -----------------------------------------


@pytest.mark.parametrize(
    ("step", "kind", "status"),
    [
        (502, UpstreamRetryable, 502),
        (503, UpstreamRetryable, 503),
        (504, UpstreamRetryable, 504),
        (429, UpstreamRetryable, 429),
        (httpx.ConnectError, UpstreamRetryable, None),
        (httpx.ReadError, UpstreamRetryable, None),
        (httpx.RemoteProtocolError, UpstreamRetryable, None),
        (httpx.ReadTimeout, UpstreamRetryable, None),
        (400, UpstreamRejected, 400),
        (404, UpstreamRejected, 404),
        (409, UpstreamRejected, 409),
        (422, UpstreamRejected, 422),
        (500, UpstreamError, 500),
        (httpx.UnsupportedProtocol, UpstreamError, None),
    ],
)
def test_the_client_tells_retryable_from_final_failures(
    step: int | type[Exception], kind: type[UpstreamError], status: int | None
) -> None:
    client = client_for(Provider(step))

    async def go() -> None:
        try:
            await client.charge(1, "1.00", "k")
        finally:
            await client.http.aclose()

    with pytest.raises(UpstreamError) as caught:
        asyncio.run(go())
    assert type(caught.value) is kind
    assert caught.value.status == status
    assert is_retryable(caught.value) == (kind is UpstreamRetryable)


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(date, now=now) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


# --- what the policy retries ---------------------------------------------------------


def test_a_transient_failure_is_retried_with_the_same_idempotency_key() -> None:
    provider = Provider(503, httpx.ReadError, 502, 201)
    retries, slept = policy()
    assert charge_through(retries, provider)["id"] == "pay_1"
    assert len(provider.requests) == 4
    keys = {r.headers["Idempotency-Key"] for r in provider.requests}
    bodies = {r.content for r in provider.requests}
    assert keys == {"order-7-12.50"}
    assert len(bodies) == 1 and b'"idempotency_key":"order-7-12.50"' in bodies.pop()
    assert len(slept) == 3


@pytest.mark.parametrize("final", [400, 404, 409, 422, 500])
def test_a_final_failure_is_never_retried(final: int) -> None:
    provider = Provider(final)
    retries, slept = policy()
    with pytest.raises(UpstreamError) as caught:
        charge_through(retries, provider)
    assert caught.value.status == final
    assert len(provider.requests) == 1
    assert slept == []


def test_attempts_are_bounded_and_the_last_failure_is_raised() -> None:
    provider = Provider(*[503] * 20)
    retries, slept = policy(max_attempts=4)
    with pytest.raises(UpstreamRetryable) as caught:
        charge_through(retries, provider)
    assert caught.value.status == 503
    assert len(provider.requests) == 4
    assert len(slept) == 3


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    # uniform(0, min(cap, base * 2**(n-1))): base 100 ms, cap 300 ms.
    caps = [0.1, 0.2, 0.3, 0.3]
    charges = 100
    provider = Provider(*([503] * 4 + [201]) * charges)
    retries, slept = policy(max_attempts=5, base_delay_ms=100, max_delay_ms=300)
    client = client_for(provider)

    async def go() -> None:
        for _ in range(charges):
            await retries.call("payments-jitter", lambda: client.charge(1, "1.00", "k"))
        await client.http.aclose()

    asyncio.run(go())
    assert len(slept) == 4 * charges
    seen = [slept[n :: len(caps)] for n in range(len(caps))]
    for cap, waits in zip(caps, seen, strict=True):
        assert all(0 <= w <= cap for w in waits)
        # Jitter: spread over the whole range, not a fixed delay.
        assert min(waits) < cap * 0.2 and max(waits) > cap * 0.8


def test_retry_after_is_honoured() -> None:
    provider = Provider((429, {"Retry-After": "1"}), (503, {"Retry-After": "0"}), 201)
    retries, slept = policy(max_retry_after_s=2.0)
    charge_through(retries, provider)
    assert slept == [1.0, 0.0]
    assert len(provider.requests) == 3


def test_a_retry_after_longer_than_the_request_can_wait_is_not_retried() -> None:
    provider = Provider((429, {"Retry-After": "30"}), 201)
    retries, slept = policy(max_retry_after_s=2.0)
    with pytest.raises(UpstreamRetryable) as caught:
        charge_through(retries, provider)
    assert caught.value.retry_after == 30.0
    assert len(provider.requests) == 1
    assert slept == []


def test_an_open_circuit_is_not_retried() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise UpstreamCircuitOpen("open")

    retries, slept = policy()
    with pytest.raises(UpstreamCircuitOpen):
        asyncio.run(retries.call("payments-open", refused))
    assert calls == 1
    assert slept == []
