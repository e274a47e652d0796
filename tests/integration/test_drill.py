"""`lab drill` played to the end against a real run: started in the background, blind
to the person (no lab_fault_active in /metrics, a neutral run dir), a hint, an answer
that stops the run and is scored on the board, and the reveal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import faults
from lab.drill import pick_case

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args], cwd=REPO, env=os.environ.copy(),
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _seed_of_a_case_without_services() -> int:
    """A seed whose case is a faulty code fault the lab runs on SQLite alone."""
    catalogue = {s.slug: s for s in faults.all_scenarios()}
    for seed in range(1000):
        case = pick_case(seed, "easy", 0.5)
        scenario = catalogue[case.slug]
        if (scenario.kind == "fault" and not case.fixed and not scenario.requires
                and not scenario.job_workers and scenario.app_workers == 1
                and "rows" not in scenario.default_load):  # fmt: skip
            return seed
    raise AssertionError("no seed gives a case without services")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_drill_is_played_blind_to_the_end_and_scored(lab_home: Path, seeded_db: str) -> None:
    seed = _seed_of_a_case_without_services()
    started = _lab("drill", "--seed", str(seed), "--minutes", "1.5")
    assert started.returncode == 0, started.stderr[-3000:]
    folder = Path(started.stdout.strip().splitlines()[-1])
    case = json.loads((folder / "case.json").read_text())
    # What the person sees names no scenario.
    assert case["slug"] not in started.stderr and case["slug"] not in started.stdout
    run_dir = next(folder.glob("*-drill"))
    meta = json.loads((run_dir / "meta.json").read_text())
    port, app_pid = meta["app"]["port"], meta["app"]["pid"]
    assert f"http://127.0.0.1:{port}" in started.stderr and str(app_pid) in started.stderr
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "http_requests_total" in metrics
    assert not [line for line in metrics.splitlines() if line.startswith("lab_fault_active{")]
    time.sleep(10)  # some load for the hint to read
    hint = _lab("drill", "--hint")
    assert hint.returncode == 0 and "hint:" in hint.stderr, hint.stderr
    report = _lab("drill", "--report")
    assert report.returncode == 0, report.stderr[-2000:]
    assert case["slug"] not in Path(report.stdout.strip().splitlines()[-1]).read_text()

    answered = _lab("drill", "--answer", case["slug"])
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert "right:" in answered.stderr
    board = json.loads((lab_home / "drills" / "board.json").read_text())
    entry = board["answers"][-1]
    assert entry["right"] is True and entry["hints"] == 1
    assert 0 < entry["points"] <= 85  # one hint cost 15
    # The answer stopped the run as Ctrl-C does: no app left, a report kept.
    deadline = time.monotonic() + 30
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _port_open(port)
    assert json.loads((run_dir / "meta.json").read_text())["status"] in ("interrupted", "completed")
    assert (run_dir / "report.html").is_file()
    assert not (lab_home / "drills" / "current.json").exists()

    revealed = _lab("drill", "--reveal")
    assert revealed.returncode == 0 and case["slug"] in revealed.stdout
    assert f"make fault={case['slug']} compare" in revealed.stdout
    again = _lab("drill", "--answer", "n-plus-one")
    assert again.returncode == 2 and "no drill under way" in again.stderr
