"""pool-exhaustion: sessions never closed vs a yield dependency that always closes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import last_sample, prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

INVOICE = "/orders/{order_id}/invoice"
POOL = 20  # pool_size 10 + max_overflow 10 (Settings' defaults)


def _pool_timeouts_logged(run_dir: Path) -> int:
    lines = (run_dir / "app.log").read_text().splitlines()
    return sum(1 for line in lines if line.startswith("{") and json.loads(line).get("msg") == (
        "db pool timeout"))  # fmt: skip


def test_pool_exhaustion_connections_return_with_the_yield_dependency(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("pool-exhaustion", tmp_path, env, duration="15s", users=50)
    # The symptom (db_pool_checked_out_end > 0) is the pool's own checkout/checkin
    # count, sampled after Locust stopped: the leaked sessions hold the whole pool,
    # the fixed dependency gave every connection back.
    assert faulty["db_pool_checked_out_end"] == POOL
    assert fixed["db_pool_checked_out_end"] == 0

    # Pool timeouts: QueuePool's TimeoutError, answered 503 (the app's own
    # http_requests_total, outside the seam) and logged, once per timeout.
    timeouts_503 = "method=GET|route=" + INVOICE + "|status=503"
    f_dir, x_dir = tmp_path / faulty["run_id"], tmp_path / fixed["run_id"]
    f_503 = last_sample(f_dir, "http_requests_total", timeouts_503)
    x_503 = last_sample(x_dir, "http_requests_total", timeouts_503)
    assert f_503 > 0, "the faulty run had no pool timeout"
    assert x_503 == 0
    assert _pool_timeouts_logged(f_dir) >= f_503  # a request still waiting at the stop logs too
    assert _pool_timeouts_logged(x_dir) == 0
    # No 500s: an exhausted pool is a clean 503, not an unhandled exception.
    assert faulty["unhandled_error_rate"] == fixed["unhandled_error_rate"] == 0
    assert fixed["error_rate"] == 0
