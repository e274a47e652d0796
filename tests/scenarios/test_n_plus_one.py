"""n-plus-one: lazy loading in a loop vs eager loading, counted by the app's own hooks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_n_plus_one_queries_per_request(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("n-plus-one", tmp_path, env, duration="12s", users=20)
    assert faulty["db_queries_per_request"] >= 50
    assert fixed["db_queries_per_request"] <= 3
    assert faulty["p50_ms"] > 2 * fixed["p50_ms"]
