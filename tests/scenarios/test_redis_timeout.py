"""redis-timeout: a slow Redis must not make the requests slower than the source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_redis_timeout_bounded_cache_falls_back_to_the_source(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("redis")
    faulty, fixed = prove("redis-timeout", tmp_path, env, duration="15s", users=20)
    assert faulty["p50_ms"] >= 1900  # every hit waits the 2 s link
    assert fixed["p99_ms"] < 1000  # at most one 50 ms budget, then the source
    assert fixed["error_rate"] == 0 and faulty["error_rate"] == 0
