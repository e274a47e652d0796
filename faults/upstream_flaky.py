"""upstream-flaky (seed 15): the payment API fails often.

Network condition (both variants): a `reset_peer` toxic with toxicity 0.3 on
the upstream link, so about 30% of calls have their connection reset.
Seam: the retry policy around every upstream call, a `CallPolicy`
(target_app/clients/upstream.py), used by `POST /orders/{order_id}/pay`.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Scenario, Symptom, Toxic

if TYPE_CHECKING:
    from target_app.clients.upstream import CallPolicy

__all__ = ["SCENARIO", "CircuitBreaker", "OneShotPolicy", "RetryParams", "RetryWithBreakerPolicy"]

T = TypeVar("T")


class RetryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(5, ge=1, le=10, description="fixed: calls per request at most")
    base_delay_ms: float = Field(25, ge=0, le=5000, description="fixed: first backoff")
    max_delay_ms: float = Field(400, ge=0, le=60_000, description="fixed: backoff cap")
    # Above the toxic's 0.3 with a margin: over 50 calls, 30 failures at p=0.3
    # is 4.6 standard deviations out, so a merely flaky provider never trips it
    # (at 0.5 over 20 calls it tripped within seconds and turned payments into
    # "pending" fallbacks), while a provider that is down trips it in 20 calls.
    breaker_failure_ratio: float = Field(
        0.6, gt=0, le=1, description="fixed: open the circuit above this failure ratio"
    )
    breaker_open_seconds: float = Field(5.0, gt=0, le=600, description="fixed: open time")


# --- faulty -----------------------------------------------------------------


class OneShotPolicy:
    """Call once; whatever the provider does is the customer's problem."""

    def __init__(self, params: RetryParams) -> None:
        pass

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await attempt()


# --- fixed ------------------------------------------------------------------


class CircuitBreaker:
    """Closed -> open when the recent failure ratio is too high -> half-open after a pause.

    While open, calls fail at once instead of piling onto a provider that is down.
    """

    WINDOW = 50
    MIN_CALLS = 20

    def __init__(self, dependency: str, failure_ratio: float, open_seconds: float) -> None:
        self.dependency = dependency
        self.failure_ratio = failure_ratio
        self.open_seconds = open_seconds
        self.results: deque[bool] = deque(maxlen=self.WINDOW)
        self.opened_at: float | None = None
        self._lock = threading.Lock()
        self._publish(0)

    def _publish(self, state: int) -> None:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app import metrics

        metrics.CIRCUIT_BREAKER_STATE.labels(self.dependency).set(state)

    def allow(self) -> bool:
        with self._lock:
            if self.opened_at is None:
                return True
            if time.monotonic() - self.opened_at >= self.open_seconds:
                self._publish(1)  # half-open: let a trial call through
                return True
            return False

    def record(self, ok: bool) -> None:
        with self._lock:
            self.results.append(ok)
            if ok and self.opened_at is not None:
                self.opened_at = None  # the trial call worked: close
                self.results.clear()
                self._publish(0)
                return
            failures = self.results.count(False)
            if len(self.results) >= self.MIN_CALLS and failures / len(self.results) > (
                self.failure_ratio
            ):
                self.opened_at = time.monotonic()
                self._publish(2)


class RetryWithBreakerPolicy:
    """Retry with exponential backoff and full jitter, behind a circuit breaker.

    Safe only because every attempt carries the same idempotency key (the route
    derives it from the order), so a retried charge is never a second charge.
    """

    def __init__(self, params: RetryParams) -> None:
        self.params = params
        self.breakers: dict[str, CircuitBreaker] = {}

    def _breaker(self, dependency: str) -> CircuitBreaker:
        if dependency not in self.breakers:
            self.breakers[dependency] = CircuitBreaker(
                dependency, self.params.breaker_failure_ratio, self.params.breaker_open_seconds
            )
        return self.breakers[dependency]

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        from target_app.clients.upstream import UpstreamError, UpstreamUnavailable

        breaker = self._breaker(dependency)
        p = self.params
        for number in range(1, p.max_attempts + 1):
            if not breaker.allow():
                raise UpstreamUnavailable(f"circuit open for {dependency}: failing fast")
            try:
                result = await attempt()
            except UpstreamError:
                breaker.record(False)
                if number == p.max_attempts:
                    raise
                cap = min(p.max_delay_ms, p.base_delay_ms * 2 ** (number - 1))
                await asyncio.sleep(random.uniform(0, cap) / 1000)  # full jitter
            else:
                breaker.record(True)
                return result
        raise AssertionError("unreachable")  # pragma: no cover


SCENARIO: Scenario[CallPolicy, RetryParams] = Scenario(
    slug="upstream-flaky",
    title="The payment API fails often (no retry, or a naive retry storm)",
    seeds=(15,),
    kind="network",
    summary=(
        "30% of connections to the payment provider are reset. Calling once fails ~30% of "
        "checkouts; retrying with backoff and jitter behind a circuit breaker, with an "
        "idempotency key, succeeds >= 99% with a bounded number of calls."
    ),
    faulty=OneShotPolicy,
    fixed=RetryWithBreakerPolicy,
    params=RetryParams,
    requires=("toxiproxy", "upstream"),
    toxics=(Toxic("upstream", "reset_peer", {"timeout": 0}, toxicity=0.3),),
    workload="checkout",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="error_rate",
        op=">",
        threshold=0.05,
        description="checkouts fail at about the provider's failure rate",
    ),
    diagnosis="""\
**What you see.** Checkout errors (502) at about the toxic's toxicity;
`upstream_request_duration_seconds_count` by `outcome` shows `ReadError` /
`RemoteProtocolError` next to `ok`. With the fix, errors fall below 1% and
`upstream_calls_per_request` in summary.json stays near 1/(1-0.3), never above
`max_attempts`.

**Retry with exponential backoff.** Retry only what is safe to repeat
(idempotency key on every charge, the same key on every attempt), wait
`uniform(0, min(cap, base * 2**n))` between attempts (full jitter: retries of
many clients do not synchronise into a storm), and bound the attempts.

**Circuit breaker.** Count recent outcomes; above a failure ratio, open the
circuit and fail fast for a while (`circuit_breaker_state` = 2) instead of
adding retries to a provider that is down; after the pause let one trial call
through (half-open, 1) and close on success.
""",
)
