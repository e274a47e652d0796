"""orm-overhead: the same report from ORM objects or from one GROUP BY."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_orm_overhead_cpu_per_request(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("orm-overhead", tmp_path, env, duration="12s", users=10)
    assert faulty["app_cpu_ms_per_request"] > 5 * fixed["app_cpu_ms_per_request"]
    assert faulty["p95_ms"] > 2 * fixed["p95_ms"]
    assert faulty["db_queries_per_request"] <= 3  # few queries: the cost is in Python
