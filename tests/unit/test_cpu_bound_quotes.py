"""cpu-bound's fixed variant: the cached quote is the computed one, bounded, computed once."""

from __future__ import annotations

import threading
import time

import pytest

from faults import cpu_bound
from faults.cpu_bound import CachedQuotes, QuoteParams, RecomputedQuotes

pytestmark = pytest.mark.unit


def test_cached_quote_equals_recomputed_and_the_cache_is_bounded() -> None:
    cached, recomputed = CachedQuotes(QuoteParams(cache_entries=2)), RecomputedQuotes(QuoteParams())
    for product, zone in [(1, 1), (2, 3), (1, 1), (3, 2), (1, 1), (4, 10)]:
        assert cached.quote(product, zone) == recomputed.quote(product, zone)
    assert len(cached.cache) == 2  # the LRU bound holds


def test_a_known_quote_is_not_recomputed_and_concurrent_misses_compute_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int]] = []
    real = cpu_bound.cheapest_route_cost

    def counted(product_id: int, zone: int) -> int:
        calls.append((product_id, zone))
        time.sleep(0.05)  # a slow computation: the other threads arrive meanwhile
        return real(product_id, zone)

    monkeypatch.setattr(cpu_bound, "cheapest_route_cost", counted)
    cached = CachedQuotes(QuoteParams())
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(cached.quote(7, 4))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cached.quote(7, 4) == answers[0]
    assert calls == [(7, 4)]  # eight concurrent misses and a hit: one computation
    assert set(answers) == {cpu_bound.price_cents(real(7, 4))}


def test_a_quote_expires_with_its_rate_card() -> None:
    cached = CachedQuotes(QuoteParams(cache_ttl_seconds=0.05))
    cached.quote(1, 1)
    assert len(cached.cache) == 1
    time.sleep(0.1)
    cached.cache.expire()
    assert len(cached.cache) == 0
