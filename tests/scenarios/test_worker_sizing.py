"""worker-sizing: gthread workers by the 2 x cores + 1 rule vs uvicorn workers, one per core.

The workload is recommendations (each ~100 ms of waiting on the model server,
the lab's upstream through Toxiproxy) and /healthz, offered on a schedule
(open model) at 1.5x what the faulty variant's threads can hold: each
recommendation holds a thread for at least the model's 100 ms, so
workers x threads threads serve at most workers x threads / 0.1 s of them a
second. Everything asserted is the client's record (Locust's requests), outside
the app: the symptom (a health check's median wait, faulty/worker_sizing.py),
and the recommendations served a second against that arithmetic cap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faults.worker_sizing import DEPENDENCY_MS, WorkerSizingParams, flask_era_workers
from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

RECOMMENDATIONS = "GET /recommendations/{user_id}"


def _recommendations_per_s(summary: dict[str, Any]) -> float:
    """The run's throughput times the recommendations' share of its requests."""
    routes = summary["routes"]
    total = sum(route["requests"] for route in routes.values())
    return float(summary["rps"]) * routes[RECOMMENDATIONS]["requests"] / total


def test_threads_held_by_waiting_requests_cap_the_app_and_uvicorn_workers_do_not(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    threads = flask_era_workers() * WorkerSizingParams().threads
    cap = threads / (DEPENDENCY_MS / 1000)  # recommendations/s the faulty threads can hold
    # Half the requests are recommendations: 1.5x the cap of them is offered.
    rate = 2 * 1.5 * cap
    faulty, fixed = prove("worker-sizing", tmp_path, env, duration="20s", rate=f"{rate:g}")
    for summary in (faulty, fixed):
        assert set(summary["responses_by_status"]) == {"200"}, summary["responses_by_status"]
    served_faulty, served_fixed = _recommendations_per_s(faulty), _recommendations_per_s(fixed)
    # An exact bound, not a tuned one: each recommendation holds its thread >= 100 ms.
    assert served_faulty <= cap, (served_faulty, cap)
    # The fix serves more than any layout of that many threads could: not capped by them.
    assert served_fixed > cap, (served_fixed, cap)
