"""upstream-flaky (seed 15): the payment API fails often.

Network condition (both variants): a `reset_peer` toxic with toxicity 0.3 on
the upstream link, so about 30% of calls have their connection reset.
Seam: the retry policy around every upstream call, a `CallPolicy`
(target_app/clients/upstream.py), used by `POST /orders/{order_id}/pay`.

The fixed variant is two maintained libraries, composed:

- tenacity retries each call (`wait_random_exponential`: full jitter), only
  what the client classes as retryable (`UpstreamRetryable`: connect errors,
  resets, timeouts, 502/503/504, 429 no sooner than its Retry-After), never a
  4xx, and at most `max_attempts` times;
- purgatory's circuit breaker guards every attempt: `breaker_failures`
  consecutive failures open it, calls then fail at once, after
  `breaker_open_seconds` it lets a trial through (half-open) and closes on
  success or opens again on failure.

Why purgatory, and why a gate on top. Of the three maintained breakers for
Python, none lets exactly one trial through under asyncio, as read in their
code: purgatory 3.0.1's `HalfOpenedState.handle_new_request` does nothing, so
every caller that arrives while the trial is in flight goes through;
aiobreaker 1.2.0 (last release 2021) half-opens on the first call after the
timeout and then lets every caller through the half-open state the same way;
pybreaker 1.4.1 serialises calls with a `threading.RLock` held for the whole
call (in every state: one call at a time, and a thread lock held across an
`await` would block the event loop) and supports coroutines only through
Tornado. purgatory is asyncio-native, typed, and its state model (the GoF
State pattern, consecutive-failure threshold, TTL, excluded exceptions) is
the one we want; the one missing rule, one trial at a time, is the small gate
in `Breaker.call`: while a trial is in flight the others fail fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import Context, OpenedState
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from faults._contract import Answer, Scenario, Symptom, Toxic
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from target_app.clients.upstream import CallPolicy

__all__ = [
    "SCENARIO",
    "STATE_VALUES",
    "Breaker",
    "OneShotPolicy",
    "RetryParams",
    "RetryWithBreakerPolicy",
]

T = TypeVar("T")

# circuit_breaker_state{dependency}: purgatory's state names as the gauge's values.
STATE_VALUES = {"closed": 0, "half-opened": 1, "opened": 2}


class RetryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(5, ge=1, le=10, description="fixed: calls per request at most")
    base_delay_ms: float = Field(25, ge=0, le=5000, description="fixed: first backoff's cap")
    max_delay_ms: float = Field(400, ge=0, le=60_000, description="fixed: backoff cap")
    max_retry_after_s: float = Field(
        1.0, ge=0, le=600,
        description="fixed: wait a 429/503's Retry-After up to this; a longer one is not retried",
    )  # fmt: skip
    # Consecutive failures: at the toxic's p = 0.3 a run of 15 has probability
    # 0.3**15 = 1.4e-8 per call, about 1e-4 over the 10,000 calls of a 30 s run,
    # so a merely flaky provider does not trip it; a provider that is down trips
    # it within 15 calls (3 requests at 5 attempts).
    breaker_failures: int = Field(
        15, ge=1, le=10_000, description="fixed: consecutive failed calls that open the circuit"
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


class Breaker:
    """purgatory's circuit for one dependency, one trial at a time when half-open,
    its state published in `circuit_breaker_state{dependency}`.

    Failures are what the provider did wrong: a transient error, a 5xx, a call
    cancelled by the caller's deadline (a provider too slow to answer within the
    budget is failing it). A 4xx (`UpstreamRejected`) is the provider working:
    purgatory's `exclude` counts it as a success.
    """

    def __init__(self, dependency: str, failures: int, open_seconds: float) -> None:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.clients.upstream import UpstreamRejected

        self.dependency = dependency
        self.factory = AsyncCircuitBreakerFactory(
            default_threshold=failures, default_ttl=open_seconds, exclude=[UpstreamRejected]
        )
        self.trial_in_flight = False
        self.context: Context | None = None  # purgatory's, once the first call has made it
        self._publish("closed")

    def _publish(self, state: str) -> None:
        from target_app import metrics

        metrics.CIRCUIT_BREAKER_STATE.labels(self.dependency).set(STATE_VALUES[state])

    async def state(self) -> str:
        breaker = await self.factory.get_breaker(self.dependency)
        return breaker.context.state

    def refusing(self) -> bool:
        """Whether a call now would fail fast without reaching the dependency: open
        with its open period not over, or half-open with the one trial in flight."""
        context = self.context
        if context is None or context.state == "closed":
            return False
        if context.state == "opened":
            opened_at = context.opened_at or 0.0
            return time.time() <= opened_at + context.ttl or self.trial_in_flight
        return self.trial_in_flight

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        from target_app.clients.upstream import UpstreamCircuitOpen

        breaker = await self.factory.get_breaker(self.dependency)
        context = self.context = breaker.context
        # From here to the end of `__aenter__` nothing awaits: the check and the
        # claim of the trial slot are one step of the event loop.
        trial = context.state != "closed"  # opened (and due for a trial?) or half-opened
        if trial and self.trial_in_flight:
            raise UpstreamCircuitOpen(f"circuit half-open for {self.dependency}: trial in flight")
        if trial:
            self.trial_in_flight = True
        try:
            try:
                await breaker.__aenter__()
            except OpenedState as opened:
                # purgatory raises its one OpenedState object on every refused
                # call, and each raise of the same object grows its traceback by
                # the frames it crossed: a leak for as long as the circuit is open.
                opened.__traceback__ = None
                self._publish("opened")
                raise UpstreamCircuitOpen(
                    f"circuit open for {self.dependency}: failing fast"
                ) from None
            self._publish(context.state)
            try:
                result = await attempt()
            except BaseException as exc:
                await breaker.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            await breaker.__aexit__(None, None, None)
            return result
        finally:
            if trial:
                self.trial_in_flight = False
            self._publish(context.state)


def _retry_after(state: RetryCallState) -> float | None:
    """The Retry-After (seconds) of the failure that ended this attempt, if it had one."""
    exc = state.outcome.exception() if state.outcome is not None else None
    value = getattr(exc, "retry_after", None)
    return None if value is None else float(value)


class _StopOnLongRetryAfter(stop_base):
    """Give up when the provider asks for a pause longer than the request can wait."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _retry_after(retry_state)
        return retry_after is not None and retry_after > self.limit_s


class RetryWithBreakerPolicy:
    """tenacity's retry (full jitter, Retry-After, bounded) around purgatory's breaker.

    Safe only because every attempt carries the same idempotency key (the route
    derives it from the order), so a retried charge is never a second charge.
    An open circuit is not retried: the request fails fast and the route falls back.
    """

    def __init__(self, params: RetryParams) -> None:
        self.params = params
        self.breakers: dict[str, Breaker] = {}
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests record it
        self.jitter = wait_random_exponential(
            multiplier=params.base_delay_ms / 1000, max=params.max_delay_ms / 1000
        )

    def breaker(self, dependency: str) -> Breaker:
        if dependency not in self.breakers:
            self.breakers[dependency] = Breaker(
                dependency, self.params.breaker_failures, self.params.breaker_open_seconds
            )
        return self.breakers[dependency]

    def _wait(self, state: RetryCallState) -> float:
        retry_after = _retry_after(state)
        if retry_after is not None:
            return retry_after  # the provider said when: no sooner
        return float(self.jitter(state))

    async def _sleep(self, seconds: float) -> None:
        await self.sleep(seconds)

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        from target_app.clients.upstream import UpstreamCircuitOpen, is_retryable

        breaker = self.breaker(dependency)
        if breaker.refusing():
            # What tenacity would do (an open circuit is not retried), without
            # building a retry loop for a call that fails at once: while the
            # provider is down this is every request, and it must stay cheap.
            raise UpstreamCircuitOpen(f"circuit open for {dependency}: failing fast")
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_any(
                stop_after_attempt(self.params.max_attempts),
                _StopOnLongRetryAfter(self.params.max_retry_after_s),
            ),
            # No wait before an attempt the breaker will refuse (this one's
            # failure opened the circuit, or it was the half-open trial): the
            # request fails now instead of after a backoff.
            wait=lambda state: 0.0 if breaker.refusing() else self._wait(state),
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        result: Any = await retrying(breaker.call, attempt)
        return cast(T, result)


def _signature(s: Signs) -> Finding | None:
    """An upstream's failures passed on to the clients: upstream calls fail and
    so do the requests that made them (a retry would have absorbed most)."""
    if (s.number("db_queries_per_request") or 0.0) >= 3:
        return None
    failed = s.number("upstream_failed_share")
    score = min(strength(failed, 0.01), strength(s.number("error_rate"), 0.01))
    return finding(
        "upstream-flaky",
        score,
        (
            Clue("share of upstream calls that failed", failed, "< 0.01"),
            Clue("client error rate", s.number("error_rate"), "< 0.01"),
        ),
    )


SCENARIO: Scenario[CallPolicy, RetryParams] = Scenario(
    signature=_signature,
    environment="an upstream that fails",
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
`max_attempts`; the provider's own ledger (`GET /_control/charges` on the
upstream) holds one charge per order however many attempts reached it.

**Retry with exponential backoff** (tenacity). Retry only what can succeed
next time (the client raises `UpstreamRetryable` for connect errors, resets,
timeouts, 502/503/504 and 429, `UpstreamRejected` for any other 4xx), only
what is safe to repeat (the same idempotency key on every attempt), wait
`uniform(0, min(cap, base * 2**n))` between attempts
(`wait_random_exponential`: full jitter, so retries of many clients do not
synchronise into a storm) or the provider's `Retry-After` when it sends one,
and bound the attempts (`stop_after_attempt`).

**Circuit breaker** (purgatory). Count consecutive failures; at the threshold
open the circuit and fail fast (`circuit_breaker_state` = 2) instead of adding
retries to a provider that is down: a request that cannot succeed must not
hold a worker. After `breaker_open_seconds` let exactly one trial call through
(half-open, 1; the others keep failing fast) and close on its success (0).
`lab chaos upstream-flaky`, then `POST /proxies/upstream {"enabled": false}`
on Toxiproxy, shows it open within a few requests and close after the pause
once the link is back (see "Circuit breaker pattern?").
""",
    answers=(
        Answer(
            question=(
                "Your API depends on a payment API that fails often. How do you handle reliability?"
            ),
            answer="""\
Several layers, each with a bound:

- **Deadline:** a timeout on every call (see upstream-slow).
- **Retries:** retry only what can succeed next time, with backoff and jitter,
  and always with the same idempotency key, so a retried charge is never a
  second charge.
- **Circuit breaker:** stops calling a provider that is down.
- **Fallback:** when all of that gives up, say honestly what happened. The
  route answers `202 payment_pending` with a status URL, and a background
  follow-up settles the charge by its key.

`make fault=upstream-flaky compare` resets 30% of connections to the provider
(a `reset_peer` toxic) in both variants.

- **Calling once:** the faulty variant fails checkouts at the provider's rate,
  an error rate of {faulty.error_rate} (a share of requests).
- **Fixed (`RetryWithBreakerPolicy`, tenacity plus purgatory):** error rate
  {fixed.error_rate}. The proof requires at least 99% of checkouts *paid*, not
  merely pending.
- **The bound:** upstream calls per request are
  {fixed.upstream_calls_per_request}, which the proof holds at or under
  `max_attempts` (5).
- **The cost:** p95 {faulty.p95_ms} ms against {fixed.p95_ms} ms.

The provider's own ledger (`GET /_control/charges`, read by the test and not
by the app) holds exactly one charge per paid order. In Grafana, "Lab upstream
dependencies", the panel "Upstream calls by outcome" shows the `ReadError` and
`RemoteProtocolError` outcomes next to `ok`.
""",
        ),
        Answer(
            question="Circuit breaker pattern?",
            answer="""\
A breaker counts consecutive failures and, at a threshold, *opens*. Calls then
fail at once, without touching the provider, so requests that cannot succeed
do not hold workers, and a struggling provider is not hit by more retries.
After a pause it is *half-open*: one trial call goes through. A success closes
the circuit, a failure opens it again.

Here that is purgatory's breaker, wrapped in `Breaker`:

- A small gate lets exactly one trial through while half-open. purgatory lets
  every concurrent caller through; the module docstring compares the
  maintained libraries.
- 15 consecutive failures open it (`breaker_failures`). At p = 0.3 a run of 15
  is about 1e-8 per call, so a merely flaky provider never trips it, while a
  provider that is down trips it within 3 requests.
- It stays open 5 s (`breaker_open_seconds`).
- A 4xx counts as success: the provider is up, the request was wrong.
- An open circuit becomes the 202 fallback, not a 502.

In this scenario's run the link is flaky, not down, so the breaker should stay
closed. The panel "Circuit breaker state" ("Lab upstream dependencies") stays
at 0, and summary.json has no breaker metric.

Its states (closed, open, one trial call when half-open) are tested in
tests/unit/test_upstream_breaker.py against purgatory itself. To watch it open,
start `lab chaos upstream-flaky` and disable the `upstream` proxy on Toxiproxy.
tests/scenarios/test_upstream_outage.py takes the provider down in the middle
of a run: payments at a fixed 50 a second (open model), the `upstream` link
down for 20 s. The breaker opens, then closes once the provider is back; no
pending order is lost or charged twice (the provider's ledger). A refused
payment is no slower than a paid one was before the outage, in the same run:
refused p99 3.7-5.0 ms against 7.2-9.4 ms paid, from the intended send time.
Without the breaker (`breaker_failures=10000`) the same payments' p99 is
335-337 ms. `lab bench --part outage` reports the refused p99 against the
10 ms requirement: 3.8-3.9 ms on 2026-12-03.

What keeps the refused payments fast, beyond the breaker:

- An open circuit is checked before the retry loop is built, and no backoff
  is slept before an attempt the breaker will refuse.
- The app's small dependencies are `async def`: FastAPI runs a `def`
  dependency in the threadpool, a thread hop per request for reading an
  attribute.
- Start-up's objects are frozen out of the garbage collector (`gc.freeze`),
  so a full collection no longer stalls every request in flight.
""",
        ),
        Answer(
            question="Retry with exponential backoff?",
            answer="""\
Use tenacity (`AsyncRetrying`), configured for what is safe:

- **What to retry:** only retryable failures (`retry_if_exception(is_retryable)`):
  connect errors, resets, timeouts, 502, 503, 504 and 429. Never another 4xx,
  since that request will fail the same way again.
- **How long to wait:** `wait_random_exponential` (full jitter) picks a wait
  between 0 and min(400 ms, 25 ms x 2^n). The jitter keeps many clients'
  retries from synchronising into waves.
- **Retry-After:** a 429 or 503 that sends one is retried no sooner than it
  asks, and not at all if it asks for more than `max_retry_after_s` (1 s).
- **How many:** at most `max_attempts` (5) calls (`stop_after_attempt`).
- **Safe to repeat:** every attempt carries the same idempotency key (derived
  from the order), so the provider charges once however many attempts reach
  it.

Measured: {fixed.upstream_calls_per_request} calls per request. With 30% of
calls failing independently, about 1/(1 - 0.3), or 1.43, is expected. Retries
cost time: p99 {fixed.p99_ms} ms against {faulty.p99_ms} ms for calling once.

Retry at one layer only, since retries in every layer multiply. Keep the
retries inside the request's deadline: here the upstream-slow deadline wraps
them.
""",
        ),
    ),
)
