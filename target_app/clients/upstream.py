"""The third-party payment/inventory API, as the app calls it.

The client itself has no timeout and no retry: those are policies, and the
policies are the seams of the upstream scenarios (faults/upstream_slow.py,
faults/upstream_flaky.py), so that the faulty and the fixed way of calling a
flaky dependency sit side by side there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import httpx

from target_app import metrics
from target_app.observability import current_timing

__all__ = ["CallPolicy", "UpstreamClient", "UpstreamError", "UpstreamUnavailable"]

T = TypeVar("T")


class UpstreamError(Exception):
    """The dependency answered with an error or the connection failed."""


class UpstreamUnavailable(UpstreamError):
    """A policy gave up (timeout, open circuit): the caller should fall back."""


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

    async def _measured(
        self, dependency: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await send()
            outcome = "ok" if response.status_code < 400 else f"http_{response.status_code}"
            if response.status_code >= 400:
                raise UpstreamError(f"{dependency} answered {response.status_code}")
            return response.json()
        except httpx.TransportError as exc:
            outcome = type(exc).__name__
            raise UpstreamError(f"{dependency}: {exc!r}") from exc
        except BaseException:  # cancelled by a timeout policy
            if outcome == "error":
                outcome = "cancelled"
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.UPSTREAM_REQUEST_DURATION.labels(dependency, outcome).observe(elapsed)
            timing = current_timing()
            if timing is not None:
                timing.upstream_seconds += elapsed

    async def charge(self, order_id: int, amount: str, idempotency_key: str) -> Any:
        body = {"order_id": order_id, "amount": amount, "idempotency_key": idempotency_key}
        return await self._measured("payments", lambda: self.http.post("/payments", json=body))

    async def inventory_feed(self) -> Any:
        # identity: the feed as the supplier serves it, with no compression asked for.
        return await self._measured(
            "inventory",
            lambda: self.http.get("/inventory", headers={"Accept-Encoding": "identity"}),
        )

    async def inventory(self, sku: str) -> Any:
        return await self._measured("inventory", lambda: self.http.get(f"/inventory/{sku}"))

    async def aclose(self) -> None:
        await self.http.aclose()
