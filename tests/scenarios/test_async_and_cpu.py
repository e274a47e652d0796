"""blocking-call and cpu-bound: the two ways one worker's requests wait on each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]


def test_blocking_call_stalls_the_loop_and_the_unrelated_endpoint(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    faulty, fixed = prove(
        "blocking-call", tmp_path, {"LAB_HOME": str(lab_home)},
        duration="12s", users=20, rows=2000,
    )  # fmt: skip
    assert faulty["event_loop_lag_p99_ms"] > 100 > fixed["event_loop_lag_p99_ms"]
    # The cheap endpoint next to the blocking one collapses with it.
    health_faulty = faulty["routes"]["GET /healthz"]["p95_ms"]
    health_fixed = fixed["routes"]["GET /healthz"]["p95_ms"]
    assert health_faulty > 10 * health_fixed, (health_faulty, health_fixed)


def test_cpu_bound_hot_function_named_by_py_spy(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    faulty, fixed = prove(
        "cpu-bound", tmp_path, {"LAB_HOME": str(lab_home)},
        duration="12s", users=20, rows=2000, profile="py-spy",
    )  # fmt: skip
    assert faulty["p95_ms"] > 2 * fixed["p95_ms"]
    profile = json.loads((tmp_path / faulty["run_id"] / "profile" / "profile.json").read_text())
    hottest = profile["top"][0]
    assert hottest["function"] == "simulate_routes", profile["top"][:3]
    assert hottest["location"].startswith("faults/cpu_bound.py")
