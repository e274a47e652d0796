"""The lab's open model (Locust with LAB_RATE) measures what vegeta measures.

The issue's requirement: checked against an independent open-model load tool on
a stalling route, the percentiles agree within 15%. vegeta (Go, `make services`
installs it in .lab/bin) sends on its own constant-rate schedule whatever the
responses, with as many connections as it needs.

The route is performance-testing's faulty variant (`GET /pricing/bands`): a
cache rebuilt inline on the event loop, so every request that arrives during a
rebuild waits for it, whichever tool sent it. Its max age is set to 2 s (a price
change shows within 2 s) so that a 20 s run holds several rebuilds and p95 and
p99 both fall inside stalls, where coordinated omission would show.

Both tools run at the same time against the same app, each at RATE: they see
the same stalls, so a difference between them is a difference in measuring, not
two samples of a noisy machine's stalls. Both go through a Toxiproxy link that
adds LINK_MS to every response: on loopback the route's p50 is ~3 ms, and the
two clients' own overheads (Python and Go, on two cores shared with other load)
differ by 2-5 ms, which 15% of 3 ms cannot hold; across a 100 ms link (a client
an ocean away, which is where load tests are run from) p50 is the route and the
link, and the tools' overheads are a few percent of it.

Compared are the requests both tools meant to send while both ran, each
measured from its intended send time: the lab's from requests.csv
(`(start - intended) * 1000 + ms`), vegeta's from its own schedule, hit `seq`
due at t0 + seq / RATE: vegeta times from its actual send, so on a busy machine
its own late sends would be omitted from its latency (a few ms here).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from lab.load import LoadConfig, LocustRun
from lab.processes import Child, free_port
from tests.conftest import REPO, RunningApp, need, start_app

pytestmark = [pytest.mark.integration, pytest.mark.services("toxiproxy")]

# Requests/s offered by each tool: the app serves twice that, plus the rebuilds.
# Below saturation: at 100/s each, on two cores shared with other load, the app
# fell behind in one run of three (p50 ~0.7 s, a growing queue rather than stalls).
# ~1,000 requests each in the window: a p99 of ~10 requests.
RATE = 50.0
DURATION_S = 20  # each tool's
LOCUST_START_S = 2.0  # how long Locust takes to import and spawn its users, about
LINK_MS = 100  # added to every response by Toxiproxy (see the module's docstring)
MAX_AGE_S = 2.0
PRODUCTS = 10_000
# The cap on the lab's requests in flight: a rebuild of ~0.3 s, or up to ~2 s on
# two cores shared with other load, leaves up to ~100 requests waiting, plus ~5 on
# the link. Enough that a slot seldom waits for a free user. With 10 users the
# lab's sends fell up to 1 s behind (each user needs the link's 100 ms per
# request, so the backlog of a stall drains slowly) and, measured from the slot,
# p50 and p95 were 1.2x vegeta's: the generator itself was the bottleneck.
USERS = 200
AGREEMENT = 0.15  # the requirement
# Each tool must offer what it was asked: a schedule that slipped would measure a
# lighter load than the one reported.
RATE_TOLERANCE = 0.03
PROXY = "open-model-check"
COLUMNS = ("start", "intended", "ms")
CATEGORIES = ("books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office")


def vegeta_binary() -> str | None:
    # `make services` puts it in the checkout's .lab/bin (or LAB_HOME's bin).
    home = Path(os.environ.get("LAB_HOME", REPO / ".lab"))
    for candidate in (REPO / ".lab" / "bin" / "vegeta", home / "bin" / "vegeta"):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("vegeta")


def _toxiproxy_api(env: dict[str, str]) -> str:
    status = subprocess.run(
        [sys.executable, "-m", "lab.cli", "status", "--json"],
        env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    services = {s["name"]: s for s in json.loads(status.stdout)["services"]}
    return f"http://127.0.0.1:{services['toxiproxy']['port']}"


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The lab's default catalogue (10,000 products): a rebuild of ~0.2-0.3 s of CPU
    here, a stall on any machine (the session's 2,000-row one takes ~30 ms)."""
    from target_app.seed import seed

    url = f"sqlite:///{tmp_path_factory.mktemp('catalogue')}/shop-{PRODUCTS}.sqlite"
    seed(url, PRODUCTS)
    return url


@pytest.fixture
def stalling_app(tmp_path: Path, catalogue: str) -> Iterator[RunningApp]:
    app = start_app(tmp_path, catalogue, FAULTS="performance-testing")
    try:
        done = httpx.put(
            f"{app.url}/_lab/faults/performance-testing",
            json={"max_age_seconds": MAX_AGE_S}, headers=app.auth, timeout=10,
        )  # fmt: skip
        done.raise_for_status()
        yield app
    finally:
        app.server.stop()


@pytest.fixture
def link(stalling_app: RunningApp, lab_services: Callable[..., dict[str, str]]) -> Iterator[str]:
    """The app's URL through a Toxiproxy proxy that delays each response by LINK_MS."""
    api = _toxiproxy_api(lab_services("toxiproxy"))
    port = free_port()
    httpx.delete(f"{api}/proxies/{PROXY}", timeout=5)  # one a killed session left
    httpx.post(
        f"{api}/proxies", timeout=5,
        json={"name": PROXY, "listen": f"127.0.0.1:{port}", "enabled": True,
              "upstream": stalling_app.url.removeprefix("http://")},
    ).raise_for_status()  # fmt: skip
    try:
        httpx.post(
            f"{api}/proxies/{PROXY}/toxics", timeout=5,
            json={"type": "latency", "stream": "downstream", "attributes": {"latency": LINK_MS}},
        ).raise_for_status()  # fmt: skip
        yield f"http://127.0.0.1:{port}"
    finally:
        httpx.delete(f"{api}/proxies/{PROXY}", timeout=5)


def _locust(url: str, out: Path) -> LocustRun:
    """The lab's own Locust run (lab/load.py), as `lab run stall... --rate` starts it."""
    run = LocustRun(
        LoadConfig("stall", users=USERS, spawn_rate=USERS, duration_s=DURATION_S, rate=RATE),
        url, out,
    )  # fmt: skip
    run.start()
    return run


def _vegeta(binary: str, url: str, out: Path) -> Child:
    # The stall workload's mix: three requests for all bands to one for a category.
    rnd = random.Random(48)
    lines = []
    for _ in range(250):
        lines += [f"GET {url}/pricing/bands"] * 3
        lines.append(f"GET {url}/pricing/bands?category={rnd.choice(CATEGORIES)}")
    targets = out / "targets.txt"
    targets.write_text("\n".join(lines) + "\n")
    command = [
        binary, "attack", f"-rate={RATE:g}/s", f"-duration={DURATION_S}s", "-timeout=30s",
        f"-targets={targets}", f"-output={out / 'vegeta.bin'}",
    ]  # fmt: skip
    return Child("vegeta", command, dict(os.environ), out / "vegeta.log")


def _send_rate(starts: np.ndarray) -> float:
    return float((len(starts) - 1) / (starts.max() - starts.min()))


def _lab_latencies(out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, intended, ms) of each request the lab logged."""
    with (out / "requests.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["intended"] for row in rows), "an open run logs `intended`"
    assert all(row["ok"] == "1" for row in rows), "the route failed under the load"
    column = {
        name: np.array([float(row[name]) for row in rows]) for name in ("start", "intended", "ms")
    }
    return column["start"], column["intended"], column["ms"]


def _vegeta_latencies(binary: str, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, intended, latency ms from the intended send time) of each of vegeta's hits."""
    encoded = subprocess.run(
        [binary, "encode", "--to", "csv", str(out / "vegeta.bin")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # timestamp (ns), code, latency (ns), bytes out, bytes in, error, body, attack, seq, ...
    rows = list(csv.reader(encoded.splitlines()))
    assert rows and all(row[1] == "200" for row in rows), "the route failed under vegeta"
    starts = np.array([int(row[0]) for row in rows]) / 1e9
    latency_ms = np.array([int(row[2]) for row in rows]) / 1e6
    seq = np.array([int(row[8]) for row in rows])
    intended = float(np.min(starts - seq / RATE)) + seq / RATE  # origin: its earliest hit
    return starts, intended, (starts - intended) * 1000 + latency_ms


def test_open_model_percentiles_agree_with_vegeta_on_a_stalling_route(
    tmp_path: Path, link: str
) -> None:
    binary = vegeta_binary()
    need(binary is not None, "vegeta is not installed: run `make services`")
    assert binary is not None
    out = tmp_path / "load"
    out.mkdir()
    locust = _locust(link, out)
    time.sleep(LOCUST_START_S)  # so that the two runs overlap most of their durations
    vegeta = _vegeta(binary, link, out)
    try:
        deadline = time.monotonic() + DURATION_S + 40
        while (locust.running() or vegeta.alive()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not locust.running() and not vegeta.alive(), "a load tool overran its duration"
    finally:
        locust.stop()
        vegeta.stop()
    assert locust.child is not None
    assert locust.child.process.returncode == 0, locust.child.tail()
    assert vegeta.process.returncode == 0, vegeta.tail()

    start, intended, ms = _lab_latencies(out)
    lab_ms = (start - intended) * 1000 + ms
    vegeta_start, vegeta_intended, vegeta_ms = _vegeta_latencies(binary, out)

    rates = {"lab": _send_rate(start), "vegeta": _send_rate(vegeta_start)}
    for tool, rate in rates.items():
        assert abs(rate / RATE - 1) <= RATE_TOLERANCE, f"{tool} sent {rate:.1f}/s, not {RATE:g}/s"

    # The same stalls: the requests both tools meant to send in the seconds both ran
    # (vegeta starts sending at once, Locust once it has imported and spawned).
    since = max(intended.min(), vegeta_intended.min())
    until = min(intended.max(), vegeta_intended.max())
    assert until - since >= 0.75 * DURATION_S, f"the tools overlapped {until - since:.1f} s only"
    lab_in = (intended >= since) & (intended <= until)
    vegeta_in = (vegeta_intended >= since) & (vegeta_intended <= until)

    quantiles = (50, 95, 99)
    lab_q = np.percentile(lab_ms[lab_in], quantiles)
    vegeta_q = np.percentile(vegeta_ms[vegeta_in], quantiles)
    uncorrected_q = np.percentile(ms[lab_in], quantiles)
    table = "; ".join(
        f"p{q}: lab {a:.1f} ms (from send {u:.1f}), vegeta {b:.1f} ms, ratio {a / b:.3f}"
        for q, a, u, b in zip(quantiles, lab_q, uncorrected_q, vegeta_q, strict=True)
    )
    print(f"rates {rates}; {until - since:.1f} s together; {table}")
    # A stall the check can see: without one every response is the link's 100 ms
    # and a few ms of the route's, and no tail would test the open model.
    assert vegeta_q[2] > 2 * LINK_MS, f"no stall in the run: {table}"
    for q, lab_value, vegeta_value in zip(quantiles, lab_q, vegeta_q, strict=True):
        assert abs(lab_value / vegeta_value - 1) <= AGREEMENT, f"p{q} disagrees: {table}"
