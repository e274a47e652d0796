"""blocking-call and cpu-bound: the two ways one worker's requests wait on each other."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.profilers.speedscope import is_idle, is_pseudo, speedscope_stacks
from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]


@pytest.mark.services
def test_blocking_call_stalls_the_loop_and_the_unrelated_endpoint(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    # The model server is the lab's upstream, reached through Toxiproxy (UPSTREAM_URL).
    env = lab_services("upstream")
    faulty, fixed = prove("blocking-call", tmp_path, env, duration="12s", users=20, rows=2000)
    # Every recommendation was the model's answer, in both: the difference is the wait.
    for summary in (faulty, fixed):
        assert set(summary["responses_by_status"]) == {"200"}, summary["responses_by_status"]
    # Lag from the app's loop timer (target_app/observability.py), outside the seam.
    assert faulty["event_loop_lag_p99_ms"] > 100 > fixed["event_loop_lag_p99_ms"]
    # The cheap endpoint next to the blocking one collapses with it (the client's clock).
    health_faulty = faulty["routes"]["GET /healthz"]["p95_ms"]
    health_fixed = fixed["routes"]["GET /healthz"]["p95_ms"]
    assert health_faulty > 10 * health_fixed, (health_faulty, health_fixed)


def _share_on_stack(speedscope: Path, function: str, file_suffix: str) -> float:
    """The share of py-spy's busy samples with `function` (of `file_suffix`) on the stack."""
    frames, stacks = speedscope_stacks(json.loads(speedscope.read_text()))
    busy = hits = 0
    for stack in stacks:
        real = [frames[i] for i in stack if not is_pseudo(frames[i])]
        if not real or is_idle(real[-1]):
            continue
        busy += 1
        hits += any(
            f["name"] == function and str(f.get("file", "")).endswith(file_suffix) for f in real
        )
    assert busy > 0
    return hits / busy


def test_cpu_bound_hot_function_named_by_py_spy(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    faulty, fixed = prove(
        "cpu-bound", tmp_path, {"LAB_HOME": str(lab_home)},
        duration="12s", users=20, rows=2000, profile="py-spy",
    )  # fmt: skip
    assert faulty["p95_ms"] > 2 * fixed["p95_ms"]
    profile_dir = tmp_path / faulty["run_id"] / "profile"
    profile = json.loads((profile_dir / "profile.json").read_text())
    # The hot frame is networkx's Dijkstra (the heap and the lanes, its own code) ...
    hottest = profile["top"][0]
    assert hottest["function"] == "_dijkstra_multisource", profile["top"][:3]
    assert hottest["location"].startswith("networkx/algorithms/shortest_paths/weighted.py")
    # ... called from the quote's route search: the requirement is that the profile puts
    # most of the worker's CPU (over half of its busy samples) under that one function.
    share = _share_on_stack(
        profile_dir / "pyspy.speedscope.json", "cheapest_route_cost", "faults/cpu_bound.py"
    )
    assert share > 0.5, share
