"""The payment provider's API as the webhook receiver and its consumer call it.

A sync client (the receiver's route runs in the threadpool, the consumer in a
Dramatiq thread): one connection pool per process, and timeouts, so that a
provider that hangs costs an event a few seconds and a retry, not a thread.
"""

from __future__ import annotations

import httpx

__all__ = ["PROVIDER_LIMITS", "PROVIDER_TIMEOUT", "payment_provider"]

# The provider answers in ~100 ms: 5 s is a provider in trouble (its own webhook
# timeouts are about that), 1 s to connect is a provider that is not there.
PROVIDER_TIMEOUT = httpx.Timeout(5.0, connect=1.0)
PROVIDER_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)


def payment_provider(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=PROVIDER_TIMEOUT, limits=PROVIDER_LIMITS)
