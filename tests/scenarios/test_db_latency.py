"""db-latency: 200 ms on the DB link, answered from the lab's own metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_db_latency_is_paid_per_round_trip_not_in_cpu(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("db-latency", tmp_path, env, duration="15s", users=20)
    assert faulty["db_queries_per_request"] == pytest.approx(4.0)
    assert fixed["db_queries_per_request"] == pytest.approx(1.0)
    # Each round trip costs the toxic's 200 ms: the latency difference divided by
    # the round trips saved is ~200 ms.
    per_round_trip = (faulty["p50_ms"] - fixed["p50_ms"]) / (
        faulty["db_queries_per_request"] - fixed["db_queries_per_request"]
    )
    assert 170 <= per_round_trip <= 260, per_round_trip
    # "DB latency or code latency?": the time is in the DB share, not in CPU.
    assert faulty["db_time_share"] > 0.8 and fixed["db_time_share"] > 0.8
    for summary in (faulty, fixed):
        assert summary["app_cpu_ms_per_request"] < 0.05 * summary["p50_ms"]
