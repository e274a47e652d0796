"""performance-testing: the lab's own load runs, and what each one can and cannot see.

The route's cache is rebuilt on the event loop every `max_age_seconds` (faulty) or
in the background (fixed). Three runs, all measured at the client (requests.csv):

1. faulty and fixed on the open model (`prove`): p99 from each request's intended
   send time against the SLO (faults/performance_testing.py SLO_P99_MS, 100 ms);
2. the faulty one again on the closed model, two Locust users at about the same
   throughput: its p99 passes the SLO although the stall happened in it too
   (coordinated omission);
3. the faulty open run's median, which passes the SLO that its p99 breaks.

Why the median and not the mean in 3: a stall of D seconds every T delays the
requests due during it by D/2 on average, so it adds about D^2 / 2T to the mean.
A short stall hides in the mean too; but this rebuild's length grows with the
machine's load (~0.3 s for 10,000 products on an idle 2-core box, 2.4 s at a load
average of 10 with other work on it, 2026-12-01), and at 2.4 s it moves the mean past the SLO as
well. The median stays blind to it at any length under half the period. The
mean is explained on the page (answers), not asserted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from faults.performance_testing import CATALOGUE_ROWS, SLO_P99_MS
from tests.scenarios.contract import prove, run_variant

pytestmark = [pytest.mark.scenario, pytest.mark.integration]

SLUG = "performance-testing"
RATE = 100  # requests/s offered, the scenario's default_load
# 12 s of load: the workload's warm-up request builds the bands just before the load
# starts, so the rebuild due 10 s later (the default max age) falls inside the window,
# and the proof's three runs stay near 80 s on an idle machine.
DURATION = "12s"
ROWS = CATALOGUE_ROWS  # the scenario's catalogue: its stall breaks the SLO on a fast box


def requests_of(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "requests.csv").open() as handle:
        return list(csv.DictReader(handle))


def sending_rate(run_dir: Path) -> float:
    """Requests per second from the first send to the last (requests.csv): the load the
    run applied, without Locust's start-up in the load window that summary.json's rps
    divides by."""
    starts = [float(row["start"]) for row in requests_of(run_dir)]
    return (len(starts) - 1) / (max(starts) - min(starts))


def slowest_ms(run_dir: Path) -> float:
    """The slowest request from its send (requests.csv): Locust's own max leaves out
    a request that ended after its last snapshot, as one stuck in a rebuild near the
    end of the run does."""
    return max(float(row["ms"]) for row in requests_of(run_dir))


def test_performance_testing_open_closed_and_the_mean(tmp_path: Path, lab_home: Path) -> None:
    env = {"LAB_HOME": str(lab_home)}
    # 1. The SLO, measured as it is written: open model, from the intended send time.
    faulty, fixed = prove(SLUG, tmp_path, env, duration=DURATION, rate=RATE, rows=ROWS)
    for summary in (faulty, fixed):
        assert summary["load_model"] == "open", summary.get("load_model")
        assert summary["error_rate"] == 0, summary["responses_by_status"]

    # 2. Closed model, same route, same fault: two users, each starting a request
    # every two schedule intervals (Locust's constant_pacing), so that together they
    # send at the open run's rate while the app answers in time.
    closed = run_variant(
        SLUG, False, tmp_path, {**env, "LAB_PACING": str(2 / RATE)},
        duration=DURATION, users=2, rows=ROWS, rate=0,  # 0: closed, the scenario's is open
    )  # fmt: skip
    assert closed["load_model"] == "closed"
    assert closed["error_rate"] == 0
    # A tolerance, not a requirement: the paced closed run sends at about the open run's
    # rate (within a factor of 1.5, the pacing's own slack on a busy box), so its passing
    # p99 is not the verdict of a much lighter load.
    open_rate, closed_rate = (
        sending_rate(tmp_path / faulty["run_id"]),
        sending_rate(tmp_path / closed["run_id"]),
    )
    assert 1 / 1.5 < closed_rate / open_rate < 1.5, (closed_rate, open_rate)
    # The stall happened in the closed run too: the requests in flight then waited
    # for it (the slowest request, from the client's clock) ...
    closed_slowest = slowest_ms(tmp_path / closed["run_id"])
    assert closed_slowest > SLO_P99_MS, closed_slowest
    # ... but the closed model sent nothing else meanwhile, so its p99 passes the SLO
    # that the open run, at about the same throughput, breaks.
    assert closed["p99_ms"] < SLO_P99_MS < faulty["p99_ms"], (closed["p99_ms"], faulty["p99_ms"])

    # 3. The faulty open run's median passes the SLO that its p99 breaks: a dashboard
    # of typical latency shows nothing wrong. (Its mean moves with the stall's
    # length: see the module's docstring.)
    assert faulty["p50_ms"] < SLO_P99_MS < faulty["p99_ms"], (faulty["p50_ms"], faulty["p99_ms"])
