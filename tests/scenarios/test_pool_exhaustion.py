"""pool-exhaustion: sessions never closed vs a yield dependency that always closes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_pool_exhaustion_connections_return_with_the_yield_dependency(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("pool-exhaustion", tmp_path, env, duration="15s", users=50)
    assert fixed["error_rate"] == 0
    # After the load, the leaked sessions still hold the pool; the fixed ones gave it back.
    assert faulty["db_pool_checked_out_end"] == 20  # pool_size 10 + max_overflow 10
    assert fixed["db_pool_checked_out_end"] == 0
    log = (tmp_path / faulty["run_id"] / "app.log").read_text()
    assert "QueuePool limit of size 10 overflow 10 reached" in log
