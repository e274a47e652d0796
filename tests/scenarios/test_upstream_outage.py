"""upstream-flaky's circuit breaker, with the provider going down in the middle of a run.

The run is the fixed variant under an open-model load (payments at a fixed
rate, so the refused calls' latency runs from each request's intended send
time, and a slow refusal cannot hide by slowing the load). Partway through,
the test takes the `upstream` link down on the real Toxiproxy for OUTAGE_S,
then brings it back. Everything asserted is measured outside the breaker:

- its state, from the app's /metrics as the run sampled it (metrics.csv);
- how fast the refused payments were, from Locust's request log;
- what the shop answered them, from the client's checkouts.csv;
- what was charged, from the provider's own ledger.

A control run, identical but for a breaker that cannot open
(`breaker_failures=10000`), shows that the fail-fast requirement is not met
without it: the test could not pass with the breaker switched off.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from faults.upstream_flaky import STATE_VALUES, RetryParams
from lab import topology
from lab.services import toxiproxy
from reports.evidence import gauge, load_evidence
from reports.latency import request_latencies
from tests.scenarios.contract import REPO
from tests.scenarios.test_upstream import _port, charges_by_order, fresh_provider

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

RATE = 50  # payments per second, offered whatever the app answers
BEFORE_S = 8.0  # provider up, link reset: the breaker must be closed
OUTAGE_S = 20.0  # provider down: four of the breaker's open periods, ~1,000 payments
# The requirement: while the provider is down, payments fail fast,
# p99 of the refused calls under 10 ms (from the intended send time).
FAIL_FAST_P99_MS = 10.0
OPEN_S = RetryParams().breaker_open_seconds
PAY = "POST /orders/{order_id}/pay"


def _start_run(out: Path, env: dict[str, str], *params: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "lab.cli", "run", "upstream-flaky", "--fixed",
            "--rate", str(RATE), "--duration", "45s", "--out", str(out)]  # fmt: skip
    for param in params:
        args += ["--param", param]
    # Polling a pending payment is another request per second per checkout: off,
    # so the offered load stays RATE payments a second.
    return subprocess.Popen(
        args, env={**os.environ, **env, "LAB_POLL_FOR_S": "0"}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _outage(
    env: dict[str, str], provider: httpx.Client, run: subprocess.Popen[str]
) -> tuple[float, float]:
    """Take the provider down mid-run; the epoch times it went down and came back."""
    api = f"http://{topology.HOST}:{_port(topology.TOXIPROXY_API_PORT, env)}"
    deadline = time.monotonic() + 120
    while provider.get("/_control/charges").json()["total"] == 0:
        if run.poll() is not None:
            pytest.fail(f"the run ended before any charge: {run.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, "no charge reached the provider within 120 s"
        time.sleep(0.2)
    # The scenario's toxic (30% of connections reset) off: before and after the
    # outage the provider is simply up, so any failure then is the breaker's.
    toxiproxy.reset(api)
    time.sleep(BEFORE_S)
    down = time.time()
    toxiproxy.set_enabled("upstream", False, api)
    try:
        time.sleep(OUTAGE_S)
    finally:
        toxiproxy.set_enabled("upstream", True, api)
    return down, time.time()


def _run_with_outage(
    out: Path, env: dict[str, str], provider: httpx.Client, *params: str
) -> tuple[Path, float, float]:
    """A whole run with the provider taken down in its middle: its dir, down, up."""
    run = _start_run(out, env, *params)
    try:
        down, up = _outage(env, provider, run)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, f"lab run exited {run.returncode}:\n{stderr[-3000:]}"
    return Path(stdout.strip().splitlines()[-1]), down, up


def _refused(run_dir: Path, down: float, up: float) -> Any:
    """The payments sent while the provider was down (from 1 s in: the first ones
    are the failures that open the circuit), latency from their intended time."""
    latencies = request_latencies(load_evidence(run_dir))
    assert latencies is not None, "no request log with intended send times"
    pays = latencies[latencies["name"] == PAY]
    return pays[(pays["at"] >= down + 1.0) & (pays["at"] < up)]["ms"]


def test_breaker_opens_fails_fast_and_closes_when_the_provider_is_back(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream", "toxiproxy")
    provider = fresh_provider(env)
    run_dir, down, up = _run_with_outage(tmp_path / "breaker", env, provider)
    ev = load_evidence(run_dir)

    # The breaker's state as the app published it: open during the outage, closed at the end.
    state = gauge(ev, "circuit_breaker_state")
    assert state is not None, "circuit_breaker_state was never sampled"
    during = state[(state["ts"] >= down + 1.0) & (state["ts"] < up)]["value"]
    assert (during == STATE_VALUES["opened"]).any(), state.to_string()
    assert state["value"].iloc[-1] == STATE_VALUES["closed"], state.tail().to_string()

    # The refused payments failed fast: the requirement, over at least 80% of
    # what the schedule offered in that window (none skipped, none hidden).
    refused = _refused(run_dir, down, up)
    assert len(refused) >= 0.8 * RATE * (up - down - 1.0), len(refused)
    p99 = float(refused.quantile(0.99))
    assert p99 < FAIL_FAST_P99_MS, f"refused payments p99 {p99:.1f} ms over {len(refused)}"

    # ... and each was the honest fallback, 202 payment_pending, never a 5xx.
    rows = _checkouts(run_dir)
    window = [r for r in rows if down + 1.0 <= float(r["start"]) < up]
    assert {r["status"] for r in window} == {"202"}, sorted({r["status"] for r in window})
    # Closed again once the provider was back and an open period had passed: paid.
    after = [r for r in rows if float(r["start"]) >= up + OPEN_S + 1.0]
    assert after, "no payment after the provider came back"
    paid = sum(r["status"] == "200" for r in after) / len(after)
    assert paid >= 0.99, f"{paid:.3f} of {len(after)} paid after the outage"

    # The provider's own ledger, after the run (shut-down drains the follow-ups):
    # nothing charged twice, and every order answered 202 was charged.
    ledger = provider.get("/_control/charges").json()
    assert ledger["orders_charged_more_than_once"] == {}
    charged = charges_by_order(ledger)
    pending = {int(r["order_id"]) for r in window}
    lost = sorted(o for o in pending if charged.get(o) != 1)
    assert lost == [], f"{len(lost)} of {len(pending)} pending orders not charged once"
    print(
        f"breaker outage: {len(refused)} refused payments, p99 {p99:.1f} ms, "
        f"{len(pending)} orders pending then charged once; {paid:.3f} paid after"
    )

    # The control: the same outage with a breaker that never opens misses the
    # requirement, so the numbers above are the breaker's doing.
    fresh_provider(env)
    control_dir, down, up = _run_with_outage(
        tmp_path / "control", env, provider, "breaker_failures=10000"
    )
    unguarded = float(_refused(control_dir, down, up).quantile(0.99))
    print(f"without the breaker the same payments' p99 is {unguarded:.1f} ms")
    assert unguarded >= FAIL_FAST_P99_MS


def _checkouts(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "checkouts.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["step"] == "pay"]
