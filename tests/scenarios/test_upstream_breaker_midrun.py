"""upstream-flaky, fixed: the provider goes down in the middle of a run.

A real app (`lab run upstream-flaky --fixed`, a modest closed load of 4
customers) against the real upstream through real Toxiproxy. Mid-run the test
disables the upstream proxy (the provider is down: connections refused), then
enables it again. Measured from outside the breaker:

- its state over time, from the app's `/metrics` (`circuit_breaker_state`) as
  the lab's sampler scraped it each second (metrics.csv);
- the calls it refused, from a probe client of this test that pays orders one
  at a time (concurrency 1, so its requests never queue behind each other): the
  client's wall time, and the app's own time for each request (the middleware's
  `Server-Timing: total`, taken when the response starts; the breaker never
  touches it).

Requirement (issue 9): while the circuit is open, calls fail fast: p99 under
10 ms, of the app's time. Why not the client's: on a 2-core machine shared with
the load generator it adds the client's own scheduling. Why 18-133 ms were
measured before: not the breaker (a refused call costs it ~0.1 ms in process)
nor event-loop queueing (`/healthz`, sent right after each probe call, answers
in well under 1 ms), but the route's work before the breaker: it looks the
order up in the threadpool, and on an oversubscribed machine that thread waits
for a CPU. A 404 pay (that look-up alone) costs the same. So the probe measures
that floor too, and where the floor alone exceeds the requirement the machine
cannot show it (skipped locally, a failure in CI, like a missing service).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lab import topology
from tests.conftest import need
from tests.scenarios.contract import REPO
from tests.scenarios.test_upstream import _port, fresh_provider

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

FAIL_FAST_P99_MS = 10.0  # the requirement: a refused call costs the app under 10 ms
OPEN_SECONDS = 2.0  # breaker_open_seconds for this run (default 5 s): a short run
DOWN_AT_S, UP_AT_S, DURATION_S = 3.0, 8.0, 15  # into the load
PROBE_EVERY_S = 0.04  # the probe's pace: 25 calls/s, one at a time
# Orders the probe pays: the 2,000 of the run's seeded shop (10,000 products / 5),
# which the workload pays too; paying one twice is the same charge (its key).
PROBE_ORDERS = itertools.cycle(range(1, 2001))

_TIMING = re.compile(r"(\w+);dur=([\d.]+)")


@dataclass(frozen=True)
class Call:
    at: float  # epoch seconds, when sent
    client_ms: float
    status: int
    detail: str
    server: dict[str, float]  # Server-Timing: total, db, upstream, app (ms)


def _server_timing(header: str | None) -> dict[str, float]:
    return {name: float(ms) for name, ms in _TIMING.findall(header or "")}


def _probe(
    base_url: str,
    stop: threading.Event,
    calls: list[Call],
    baseline: list[tuple[float, float]],
    floor: list[tuple[float, float]],
) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for order_id in PROBE_ORDERS:
            if stop.is_set():
                return
            at = time.time()
            started = time.perf_counter()
            response = client.post(f"/orders/{order_id}/pay")
            client_ms = (time.perf_counter() - started) * 1000
            body = response.json() if response.status_code in (200, 202, 502) else {}
            calls.append(
                Call(at, client_ms, response.status_code, str(body.get("detail", "")),
                     _server_timing(response.headers.get("server-timing")))
            )  # fmt: skip
            # The app's floor at that moment: its cheapest route, sent right after.
            health = client.get("/healthz")
            missing = client.post("/orders/999999999/pay")
            assert missing.status_code == 404
            baseline.append((at, _server_timing(health.headers.get("server-timing"))["total"]))
            floor.append((at, _server_timing(missing.headers.get("server-timing"))["total"]))
            time.sleep(max(PROBE_EVERY_S - (time.perf_counter() - started), 0))


def _breaker_states(run_dir: Path) -> list[tuple[float, int]]:
    """circuit_breaker_state{payments} as the lab's sampler scraped it from /metrics (1 s)."""
    with (run_dir / "metrics.csv").open() as handle:
        return [
            (float(row["ts"]), int(float(row["value"]))) for row in csv.DictReader(handle)
            if row["name"] == "circuit_breaker_state" and row["labels"] == "dependency=payments"
        ]  # fmt: skip


@contextmanager
def _threads(*targets: Callable[[threading.Event], None]) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=t, args=(stop,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def _wait_for_load(out: Path, run: subprocess.Popen[str]) -> tuple[str, float]:
    """The app's URL and the load's start, from the run's meta.json as it is written."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()[1][-3000:]
        for meta_path in out.glob("*upstream-flaky-fixed*/meta.json"):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            if meta.get("load_started_at"):
                return f"http://{meta['app']['host']}:{meta['app']['port']}", time.time()
        time.sleep(0.1)
    raise AssertionError("the run's load never started")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _first(states: list[tuple[float, int]], value: int, after: float) -> float | None:
    return next((t for t, s in states if s == value and t >= after), None)


def test_breaker_opens_fails_fast_and_closes_when_the_provider_is_back(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    fresh_provider(env)
    toxiproxy = httpx.Client(
        base_url=f"http://{topology.HOST}:{_port(topology.TOXIPROXY_API_PORT, env)}", timeout=10
    )
    args = [sys.executable, "-m", "lab.cli", "run", "upstream-flaky", "--fixed",
            "--out", str(tmp_path), "--users", "4", "--duration", f"{DURATION_S}s",
            "--param", f"breaker_open_seconds={OPEN_SECONDS}"]  # fmt: skip
    run = subprocess.Popen(
        args, env={**os.environ, **env}, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    calls: list[Call] = []
    baseline: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    try:
        base_url, load_at = _wait_for_load(tmp_path, run)
        # Without the scenario's reset_peer toxic: this test is about an outage,
        # and with 30% of trials reset the circuit's closing would be a coin toss
        # (the flaky link is test_upstream.py's). Toxiproxy's reset re-enables the
        # proxy and removes every toxic.
        assert toxiproxy.post("/reset").is_success
        with _threads(lambda stop: _probe(base_url, stop, calls, baseline, floor)):
            time.sleep(max(load_at + DOWN_AT_S - time.time(), 0))
            down_at = time.time()
            assert toxiproxy.post("/proxies/upstream", json={"enabled": False}).is_success
            time.sleep(max(load_at + UP_AT_S - time.time(), 0))
            up_at = time.time()
            assert toxiproxy.post("/proxies/upstream", json={"enabled": True}).is_success
            time.sleep(max(load_at + DURATION_S - 1 - time.time(), 0))
        stdout, stderr = run.communicate(timeout=300)
    finally:
        toxiproxy.post("/proxies/upstream", json={"enabled": True})
        if run.poll() is None:
            run.terminate()
            run.wait(timeout=60)
    assert run.returncode == 0, stderr[-3000:]
    run_dir = Path(stdout.strip().splitlines()[-1])

    # The breaker as the app's /metrics showed it (the lab's 1 s samples): closed
    # before, open soon after the provider went down (4 customers at 5 attempts
    # reach 15 consecutive failures in well under a second), closed again within
    # one open period plus a trial of its return, and closed at the end.
    states = _breaker_states(run_dir)
    assert all(s == 0 for t, s in states if t < down_at), states
    opened_at = _first(states, 2, down_at)
    assert opened_at is not None and opened_at - down_at < 2.0, states
    closed_at = _first(states, 0, up_at)
    assert closed_at is not None and closed_at - up_at < OPEN_SECONDS + 2.0, states
    assert states[-1][1] == 0, states

    # The calls the breaker refused, as the client saw them: while the provider
    # was down, answered 202 without a call to the provider (no upstream time in
    # the app's own timing of the request).
    outage = [c for c in calls if down_at <= c.at < up_at]
    refused = [c for c in outage if c.status == 202 and c.server.get("upstream") == 0]
    # The other calls of the outage: the ones that opened the circuit, and its
    # trials (one refused connect, then tenacity's backoff before the next attempt
    # finds the circuit open again). They called the provider: not fail-fast calls.
    called = [c for c in outage if c.server.get("upstream", 0) > 0]
    assert len(refused) >= 50, outage[:8]
    assert all("circuit" in c.detail for c in refused), {c.detail for c in refused}
    server_ms = [c.server["total"] for c in refused]
    client_ms = [c.client_ms for c in refused]
    health_ms = [ms for at, ms in baseline if down_at <= at < up_at]
    floor_ms = [ms for at, ms in floor if down_at <= at < up_at]
    server_p99 = _percentile(server_ms, 0.99)
    print(
        f"breaker open {opened_at - down_at:.2f} s after the provider went down (1 s samples), "
        f"closed {closed_at - up_at:.2f} s after it came back; {len(refused)} refused calls, "
        f"app time p50 {_percentile(server_ms, 0.5):.2f} p99 {server_p99:.2f} "
        f"max {max(server_ms):.2f} ms, client time p50 {_percentile(client_ms, 0.5):.2f} "
        f"p99 {_percentile(client_ms, 0.99):.2f} ms; /healthz right after each, app time "
        f"p50 {_percentile(health_ms, 0.5):.2f} p99 {_percentile(health_ms, 0.99):.2f} ms; "
        f"404 pay p50 {_percentile(floor_ms, 0.5):.2f} p99 {_percentile(floor_ms, 0.99):.2f} ms; "
        f"{len(called)} outage calls reached for the provider: "
        f"{sorted(round(c.server['total']) for c in called)} ms"
    )
    # Once closed, payments go through again.
    assert any(c.status == 200 for c in calls if c.at > closed_at), calls[-5:]

    # What the route does before it reaches the breaker (the order's look-up in
    # the threadpool) is the floor of any call to it: a 404 pay does only that,
    # and on an oversubscribed machine its time is the thread's wait for a CPU.
    # When that floor alone is over the requirement, this machine cannot show it.
    need(
        _percentile(floor_ms, 0.99) < FAIL_FAST_P99_MS,
        f"the route's own look-up before the breaker (a 404 pay) has an app time p99 of "
        f"{_percentile(floor_ms, 0.99):.1f} ms on this machine now: over the {FAIL_FAST_P99_MS} "
        f"ms requirement before the breaker is reached",
    )
    assert server_p99 < FAIL_FAST_P99_MS, sorted(server_ms)[-10:]
