"""db-down, bandwidth-limit and slicer: what a degraded link does, and what the code can do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_db_down_answers_503_with_retry_after_not_500(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("db-down", tmp_path, env, duration="12s", users=20)
    assert set(faulty["responses_by_status"]) == {"500"}
    assert set(fixed["responses_by_status"]) == {"503"}
    # One log line per outage window instead of a traceback per request.
    logs = {
        variant: (run / "app.log").read_text()
        for variant, run in ((s["variant"], tmp_path / s["run_id"]) for s in (faulty, fixed))
    }
    assert logs["faulty"].count("Traceback") > 100
    assert logs["fixed"].count("Traceback") == 0
    assert 1 <= logs["fixed"].count("database unreachable") <= 5
    # The faulty variant's tracebacks are the app's last resort's: one per request, each
    # under the request id its client got back (target_app/api/errors.py).
    unhandled = [
        json.loads(line)
        for line in logs["faulty"].splitlines()
        if '"msg":"unhandled exception"' in line
    ]
    assert len(unhandled) > 100
    assert all(
        entry.get("request_id") and "OperationalError" in entry["exc"] for entry in unhandled
    )


def test_bandwidth_limit_fetch_what_you_need(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    faulty, fixed = prove("bandwidth-limit", tmp_path, env, duration="12s", users=10)
    assert faulty["p50_ms"] > 10 * fixed["p50_ms"]
    assert faulty["error_rate"] == 0 and fixed["error_rate"] == 0


def test_slicer_fewer_bytes_fewer_slices(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty, fixed = prove("slicer", tmp_path, env, duration="12s", users=10)
    assert faulty["p50_ms"] > 1.8 * fixed["p50_ms"]
    assert faulty["db_time_share"] > 0.8  # the time is on the DB link
