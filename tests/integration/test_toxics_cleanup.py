"""A `lab run` killed with SIGKILL: no orphan survives, the next `lab up` clears its toxics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.services]


def _toxics(api: str) -> list[dict[str, object]]:
    proxies = httpx.get(f"{api}/proxies", timeout=5).json()
    return [toxic for proxy in proxies.values() for toxic in proxy["toxics"]]


def test_sigkilled_run_leaves_no_orphan_and_next_up_clears_its_toxics(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = {**os.environ, **lab_services("upstream")}
    status = subprocess.run(
        [sys.executable, "-m", "lab.cli", "status", "--json"],
        env=env, cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    services = {s["name"]: s for s in json.loads(status.stdout)["services"]}
    api = f"http://127.0.0.1:{services['toxiproxy']['port']}"

    run = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "run", "upstream-slow", "--duration", "60s",
         "--users", "5", "--out", str(tmp_path)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _toxics(api) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _toxics(api), "the run never applied its toxic"
        children = psutil.Process(run.pid).children(recursive=True)
        assert children
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()

    # PR_SET_PDEATHSIG has sent SIGTERM: the app shuts down gracefully, which
    # waits for its in-flight requests (6 s calls to the slow provider).
    def survivors() -> list[psutil.Process]:
        return [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

    deadline = time.monotonic() + 30
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert survivors() == [], [c.cmdline() for c in survivors()]
    # Nobody was left to remove the toxic: the next `lab up` does.
    assert _toxics(api)
    up = subprocess.run(
        [sys.executable, "-m", "lab.cli", "up", "--only", "upstream"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert _toxics(api) == []


def _lab(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_toxic_of_every_network_scenario_is_applied_and_removed(
    lab_services: Callable[..., dict[str, str]],
) -> None:
    import faults

    env = {**os.environ, **lab_services("upstream", "postgres", "redis")}
    network = [s for s in faults.all_scenarios() if s.toxics]
    types = {t.type for s in network for t in s.toxics}
    assert {"latency", "reset_peer", "bandwidth", "slicer", "down"} <= types
    for scenario in network:
        applied = _lab(env, "chaos", scenario.slug)
        assert applied.returncode == 0, applied.stderr
        proxies = json.loads(_lab(env, "status", "--json").stdout)["proxies"]
        for toxic in scenario.toxics:
            proxy = proxies[toxic.link]
            if toxic.type == "down":
                assert proxy["enabled"] is False, scenario.slug
                continue
            installed = [t for t in proxy["toxics"] if t["type"] == toxic.type]
            assert len(installed) == 1, (scenario.slug, proxy["toxics"])
            assert installed[0]["stream"] == toxic.stream
            assert installed[0]["toxicity"] == pytest.approx(toxic.toxicity)
            for key, value in toxic.attributes.items():
                assert installed[0]["attributes"][key] == value
        cleared = _lab(env, "chaos", "--reset")
        assert cleared.returncode == 0, cleared.stderr
        proxies = json.loads(_lab(env, "status", "--json").stdout)["proxies"]
        assert all(p["enabled"] and not p["toxics"] for p in proxies.values()), scenario.slug
