"""The third-party payment/inventory API, as the app calls it.

The client itself has no timeout and no retry: those are policies, and the
policies are the seams of the upstream scenarios (faults/upstream_slow.py,
faults/upstream_flaky.py), so that the faulty and the fixed way of calling a
flaky dependency sit side by side there.

What the client does decide is what a failure *is*, because only it sees the
status and the transport error:

    UpstreamError               the dependency failed; `status` when it answered
    ├── UpstreamRetryable       worth another attempt with the same idempotency key:
    │                           connect errors, resets, timeouts, 502/503/504, 429
    │                           (`retry_after`: the provider's Retry-After, seconds)
    ├── UpstreamRejected        a 4xx other than 429: the request itself is wrong,
    │                           another attempt gets the same answer
    └── UpstreamUnavailable     a policy gave up (deadline, open circuit): fall back
        └── UpstreamCircuitOpen the circuit breaker refused the call: nothing was sent

A 500 is an UpstreamError of neither kind: the provider failed in a way it did
not call transient, so it is not retried, but it counts against the breaker.

A payment the API could not confirm within its budget (202 `payment_pending`)
is followed up by `PendingCharges`: a background task per order that asks the
provider for the charge by its idempotency key and, if the provider never got
it, submits it with that same key, then records the outcome. Its calls go
through the same retry policy (and so the same circuit breaker) as the API's:
while the circuit is open a follow-up waits instead of calling a provider
that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any, Protocol, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from target_app.observability import measure_upstream

__all__ = [
    "RETRYABLE_STATUSES",
    "CallPolicy",
    "PendingCharges",
    "UpstreamCircuitOpen",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamRetryable",
    "UpstreamUnavailable",
    "is_retryable",
    "parse_retry_after",
]

T = TypeVar("T")
log = logging.getLogger("target_app.upstream")

# What a provider says when trying again later can work. 429 is "too many
# requests": retry, but no sooner than its Retry-After.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Transport failures worth another attempt: the connection could not be made,
# broke, or timed out. (UnsupportedProtocol, LocalProtocolError, ProxyError
# are configuration errors: another attempt fails the same way.)
_RETRYABLE_TRANSPORT = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


class UpstreamError(Exception):
    """The dependency answered with an error or the connection failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UpstreamRetryable(UpstreamError):
    """A transient failure: the same request (same idempotency key) may succeed."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class UpstreamRejected(UpstreamError):
    """The provider refused the request (4xx other than 429): never retried."""


class UpstreamUnavailable(UpstreamError):
    """A policy gave up (timeout, open circuit): the caller should fall back."""


class UpstreamCircuitOpen(UpstreamUnavailable):
    """The circuit breaker refused the call without sending it."""


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamRetryable)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0)


class CallPolicy(Protocol):
    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T: ...


class UpstreamClient:
    def __init__(self, base_url: str) -> None:
        # timeout=None on purpose: how long to wait is the policy's decision.
        # No keep-alive: one connection per call, so a Toxiproxy toxic's
        # toxicity (decided per connection) is a per-call failure probability,
        # as a flaky provider's is.
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=None, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.pending = PendingCharges(self)

    async def _measured(
        self,
        dependency: str,
        send: Callable[[], Awaitable[httpx.Response]],
        missing_ok: bool = False,
    ) -> Any:
        with measure_upstream(dependency) as call:
            try:
                response = await send()
            except _RETRYABLE_TRANSPORT as exc:
                call.outcome = type(exc).__name__
                raise UpstreamRetryable(f"{dependency}: {exc!r}") from exc
            except httpx.TransportError as exc:
                call.outcome = type(exc).__name__
                raise UpstreamError(f"{dependency}: {exc!r}") from exc
            except BaseException:  # cancelled by a timeout policy
                call.outcome = "cancelled"
                raise
            code = response.status_code
            call.outcome = "ok" if code < 400 else f"http_{code}"
            if code == 404 and missing_ok:
                return None
            if code in RETRYABLE_STATUSES:
                raise UpstreamRetryable(
                    f"{dependency} answered {code}",
                    code,
                    parse_retry_after(response.headers.get("Retry-After")),
                )
            if 400 <= code < 500:
                raise UpstreamRejected(f"{dependency} answered {code}", code)
            if code >= 500:
                raise UpstreamError(f"{dependency} answered {code}", code)
            return response.json()

    async def charge(self, order_id: int, amount: str, idempotency_key: str) -> Any:
        # The key in the body and in the header: every attempt of this charge,
        # and every follow-up, is the same charge to the provider.
        body = {"order_id": order_id, "amount": amount, "idempotency_key": idempotency_key}
        headers = {"Idempotency-Key": idempotency_key}
        return await self._measured(
            "payments", lambda: self.http.post("/payments", json=body, headers=headers)
        )

    async def payment_by_key(self, idempotency_key: str) -> Any:
        """The provider's charge made with this key, or None if it has none."""
        return await self._measured(
            "payments",
            lambda: self.http.get("/payments", params={"idempotency_key": idempotency_key}),
            missing_ok=True,
        )

    async def inventory_feed(self) -> Any:
        # identity: the feed as the supplier serves it, with no compression asked for.
        return await self._measured(
            "inventory",
            lambda: self.http.get("/inventory", headers={"Accept-Encoding": "identity"}),
        )

    async def inventory(self, sku: str) -> Any:
        return await self._measured("inventory", lambda: self.http.get(f"/inventory/{sku}"))

    async def aclose(self) -> None:
        await self.pending.drain()
        await self.http.aclose()


Recorder = Callable[[int, str, dict[str, Any]], Awaitable[None]]


class PendingCharges:
    """Follow-ups of the charges the API answered `payment_pending` for.

    One follow-up per order (a second 202 for the same order joins the first):
    ask the provider for the charge by its idempotency key; if it has none
    (the call never reached it), submit it with that same key; retry
    transient failures with full-jitter backoff for up to `give_up_after_s`;
    then `record` the payment. Every call carries the key, so however many
    follow-ups and retries run, the provider charges the order once.

    A queue and at most `concurrency` workers (as a job queue's): the pending
    charges wait their turn as entries of a queue, so a provider that is down
    for a while, with hundreds of orders pending, costs the app a few sleeping
    workers, not hundreds of tasks retrying beside its requests.

    The tasks live in this process: shutting the app down waits for them
    (`drain`, bounded). A deployment that must survive a crash keeps the
    pending charge in a table or a queue (an outbox) and runs this same loop
    from there; the loop does not change.
    """

    def __init__(
        self,
        client: UpstreamClient,
        call_timeout_s: float = 30.0,
        give_up_after_s: float = 120.0,
        drain_timeout_s: float = 15.0,
        concurrency: int = 8,
    ) -> None:
        self.client = client
        self.call_timeout_s = call_timeout_s
        self.give_up_after_s = give_up_after_s
        self.drain_timeout_s = drain_timeout_s
        self.concurrency = concurrency
        # Pending charges by key: queued, or being resolved by a worker.
        self.pending: dict[str, tuple[int, str, Recorder, CallPolicy]] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []

    def follow_up(
        self, order_id: int, amount: str, key: str, record: Recorder, policy: CallPolicy
    ) -> None:
        """Resolve this charge in the background; `policy` wraps each call (the app's
        retry policy, with its breaker: an open circuit refuses a follow-up's call too)."""
        if key in self.pending:
            return
        self.pending[key] = (order_id, amount, record, policy)
        self.queue.put_nowait(key)
        if len(self.workers) < self.concurrency:
            self.workers.append(asyncio.create_task(self._work()))

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                order_id, amount, record, policy = self.pending[key]
                await self._resolve(order_id, amount, key, record, policy)
            finally:
                self.pending.pop(key, None)
                self.queue.task_done()

    async def _resolve(
        self, order_id: int, amount: str, key: str, record: Recorder, policy: CallPolicy
    ) -> None:
        client = self.client

        async def resolve_once() -> Any:
            payment = await policy.call("payments", lambda: client.payment_by_key(key))
            if payment is None:
                payment = await policy.call(
                    "payments", lambda: client.charge(order_id, amount, key)
                )
            return payment

        # Retried here: transient failures, a call past its timeout, and a call the
        # policy gave up on (an open circuit: wait, then ask again).
        retrying = AsyncRetrying(
            retry=retry_if_exception(
                lambda e: is_retryable(e) or isinstance(e, TimeoutError | UpstreamUnavailable)
            ),
            wait=wait_random_exponential(multiplier=0.5, max=10.0),
            stop=stop_after_delay(self.give_up_after_s),
            reraise=True,
        )
        try:
            await self._retried(retrying, resolve_once, order_id, amount, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # given up: the order stays pending, and says so in the log
            log.warning(
                "payment follow-up gave up",
                extra={"fields": {"order_id": order_id, "key": key, "error": repr(exc)}},
            )

    async def _retried(
        self,
        retrying: AsyncRetrying,
        resolve_once: Callable[[], Awaitable[Any]],
        order_id: int,
        amount: str,
        record: Recorder,
    ) -> None:
        async for attempt in retrying:
            with attempt:
                async with asyncio.timeout(self.call_timeout_s):
                    payment = await resolve_once()
        await record(order_id, amount, payment)

    async def drain(self) -> None:
        """Wait for the pending follow-ups (at most `drain_timeout_s`), then cancel the rest."""
        left = len(self.pending)
        if left:
            try:
                async with asyncio.timeout(self.drain_timeout_s):
                    await self.queue.join()
                left = 0
            except TimeoutError:
                left = len(self.pending)
        for worker in self.workers:
            worker.cancel()
        for worker in self.workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if left:
            log.warning(
                "payment follow-ups cancelled at shut-down",
                extra={"fields": {"count": left}},
            )
