"""The open model and distributed Locust, as the runner plans them: validation, defaults,
Locust's command and environment (interface 1), meta.json's `load` (interface 3)."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import psutil
import pytest
from rich.console import Console

import lab.runner
from lab.errors import LabError
from lab.load import LoadConfig, LocustRun
from lab.processes import Child
from lab.runner import (
    MAX_RATE_PER_PROCESS,
    OPEN_USERS_MAX,
    OPEN_USERS_MIN,
    RunOptions,
    _live_line,
    _open,
    _validate,
    open_users,
)

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def two_cores_no_services(monkeypatch: pytest.MonkeyPatch) -> None:
    # The machine's core count and a developer's `lab up` must not change the answers.
    monkeypatch.setattr(lab.runner, "usable_cores", lambda: 2)
    monkeypatch.setattr(lab.runner, "available_services", set)


def _refused(options: RunOptions) -> str:
    with pytest.raises(LabError) as info:
        _validate(options)
    message = str(info.value)
    assert "\n" not in message and message.count(". ") == 0, message  # one sentence
    return message


@pytest.mark.parametrize("rate", [-5.0, math.nan, math.inf])
def test_a_rate_must_be_a_positive_finite_number(rate: float) -> None:
    message = _refused(RunOptions("memory-leak", rate=rate))
    assert message.startswith("--rate must be a positive number of requests per second (0: ")


def test_the_scenario_default_load_picks_the_model_and_rate_0_asks_for_closed() -> None:
    # performance-testing's default load is open (its lesson is a stall under a schedule).
    default_rate = float(lab.runner.faults.get("performance-testing").default_load["rate"])
    assert _validate(RunOptions("performance-testing")).options.rate == default_rate
    closed = _validate(RunOptions("performance-testing", rate=0)).options
    assert closed.rate is None and closed.users == 50  # the closed default users
    assert _validate(RunOptions("performance-testing", rate=7)).options.rate == 7
    assert _validate(RunOptions("memory-leak")).options.rate is None


def test_a_rate_one_process_cannot_keep_says_to_add_processes() -> None:
    message = _refused(RunOptions("memory-leak", rate=MAX_RATE_PER_PROCESS + 1))
    assert "more than 1 Locust process can send on schedule" in message
    assert "16,000 requests/s each" in message and "add --load-processes" in message
    # Two processes may send twice as much; past that, there is no core left to add one.
    _validate(RunOptions("memory-leak", rate=MAX_RATE_PER_PROCESS + 1, load_processes=2))
    message = _refused(RunOptions("memory-leak", rate=2 * MAX_RATE_PER_PROCESS + 1,
                                  load_processes=2))  # fmt: skip
    assert "more than 2 Locust processes" in message and "--load-processes" not in message


def test_load_processes_are_at_least_one_and_at_most_the_cores() -> None:
    assert _refused(RunOptions("memory-leak", load_processes=0)) == (
        "--load-processes must be at least 1, got 0"
    )
    message = _refused(RunOptions("memory-leak", load_processes=3))
    assert message.startswith("--load-processes 3 is more than the 2 cores here: ")
    assert "one core at most" in message
    assert _validate(RunOptions("memory-leak", load_processes=2)).options.load_processes == 2
    assert _refused(RunOptions("memory-leak", users=1, load_processes=2)) == (
        "--users 1 is fewer than the 2 Locust processes: each worker runs its share of the "
        "users (and of the rate), so a worker without a user would send nothing"
    )


def test_the_seeded_catalogue_is_the_scenario_s_unless_told() -> None:
    # performance-testing's stall needs a catalogue bigger than the lab's default
    # (faults/performance_testing.py, CATALOGUE_ROWS).
    rows = int(lab.runner.faults.get("performance-testing").default_load["rows"])
    assert rows > lab.runner.DEFAULT_ROWS
    assert _validate(RunOptions("performance-testing")).seed_rows == rows
    assert _validate(RunOptions("performance-testing", seed_rows=500)).seed_rows == 500
    assert _validate(RunOptions("memory-leak")).seed_rows == lab.runner.DEFAULT_ROWS
    assert _refused(RunOptions("memory-leak", seed_rows=0)) == "--rows must be at least 1, got 0"


@pytest.mark.parametrize(("slug", "rows", "seeded"), [
    ("performance-testing", None, "catalogue"), ("performance-testing", 500, 500),
    ("memory-leak", None, 10_000), (None, None, 10_000),
])  # fmt: skip
def test_lab_serve_seeds_the_catalogue_lab_run_would(
    slug: str | None, rows: int | None, seeded: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lab.commands import serve

    if seeded == "catalogue":
        seeded = int(lab.runner.faults.get("performance-testing").default_load["rows"])
    asked: list[int] = []

    def _serve(*args: object) -> int:  # what would have been seeded, not the serving
        asked.append(cast(int, args[6]))
        return 0

    monkeypatch.setattr(serve, "_serve", _serve)
    assert serve.run(slug, seed_rows=rows, console=Console(file=io.StringIO())) == 0
    assert asked == [seeded]
    with pytest.raises(LabError, match="--rows must be at least 1, got 0"):
        serve.run(slug, seed_rows=0, console=Console(file=io.StringIO()))


def test_an_open_run_sizes_its_users_from_the_rate_unless_told() -> None:
    assert _validate(RunOptions("memory-leak", rate=200)).users == 200  # 1 s of requests
    assert _validate(RunOptions("memory-leak", rate=2)).users == OPEN_USERS_MIN
    assert _validate(RunOptions("memory-leak", rate=5_000)).users == OPEN_USERS_MAX
    assert _validate(RunOptions("memory-leak", rate=200, users=7)).users == 7
    assert _validate(RunOptions("memory-leak")).users == 50  # closed: the scenario's own
    assert open_users(150.2) == 151


def test_the_locust_command_and_environment_of_each_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_RATE", "999")  # left in the user's shell: must not leak in
    closed = LocustRun(LoadConfig(users=5), "http://127.0.0.1:1", tmp_path)
    assert closed.env["LAB_RATE"] == "" and closed.env["LAB_LOAD_PROCESSES"] == "1"
    assert "--processes" not in closed.command

    open_ = LocustRun(LoadConfig(users=200, rate=200.0, load_processes=2), "http://h", tmp_path)
    assert float(open_.env["LAB_RATE"]) == 200.0 and open_.env["LAB_LOAD_PROCESSES"] == "2"
    assert open_.env["LAB_USERS"] == "200"  # all users, over all processes
    flags = dict(itertools.pairwise(open_.command))
    assert flags["--processes"] == "2"
    assert flags["--master-bind-host"] == "127.0.0.1"
    # The workers find their master on the port it binds: one free port, not 5557.
    assert flags["--master-bind-port"] == flags["--master-port"] != "5557"


def test_meta_json_records_the_load_model_and_the_users_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    plan = _validate(RunOptions("memory-leak", rate=300, load_processes=2, out=tmp_path))
    state = _open(plan, Console(file=io.StringIO()))
    load = json.loads((state.run_dir / "meta.json").read_text())["load"]
    assert load["rate"] == 300.0 and load["load_processes"] == 2
    assert load["users"] == 300 and load["spawn_rate"] == 300.0
    closed = _open(_validate(RunOptions("memory-leak", out=tmp_path / "c")), state.console)
    load = json.loads((closed.run_dir / "meta.json").read_text())["load"]
    assert (load["rate"], load["load_processes"], load["users"]) == (None, 1, 50)


def test_the_live_line_shows_the_offered_rate_of_an_open_run(tmp_path: Path) -> None:
    header = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,95%,Total Request Count,"
    header += "Total Failure Count"
    (tmp_path / "locust_stats_history.csv").write_text(
        f"{header}\n1,20,,Aggregated,187.5,0,12,900,9\n"
    )
    assert _live_line(tmp_path, None, 200.0).startswith("RPS     188 of 200 offered | p95 ")
    closed = _live_line(tmp_path, None)
    assert "offered" not in closed and "errors  1.0%" in closed


def test_the_runner_merges_request_logs_without_importing_locust() -> None:
    # Locust's import monkey-patches the process with gevent: the lab's own threads
    # (the sampler, the progress line) must never run under it.
    code = "import lab.runner, sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    assert "loadtests.request_log" in modules
    assert [m for m in modules if m.split(".")[0] in {"locust", "gevent"}] == []


# A stand-in for Locust's master: it forks a "worker" that takes `linger` seconds to
# close its log after the master is gone, as Locust's own workers may. On SIGINT it
# shuts down cleanly (exit code 0), or dies of it as Locust's master does when
# interrupted before its runner exists.
_MASTER = """
import os, signal, sys, time
if os.fork() == 0:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master's quit message, not a signal
    time.sleep(float(sys.argv[2]))
    open(sys.argv[1], "w").write("closed")
    os._exit(0)
if sys.argv[3] == "clean":
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("master", "linger", "waited"),
    [("clean", 1.0, True), ("clean", 60.0, False), ("dies", 1.0, False)],
    ids=["worker-finishes", "worker-stuck", "master-died"],
)
def test_stopping_waits_for_the_workers_of_a_clean_shutdown_then_kills_what_is_left(
    tmp_path: Path, master: str, linger: float, waited: bool
) -> None:
    closed = tmp_path / "closed"
    run = LocustRun(LoadConfig(load_processes=2), "http://127.0.0.1:1", tmp_path)
    command = [sys.executable, "-c", _MASTER, str(closed), str(linger), master]
    run.child = Child("fake-locust", command, {}, tmp_path / "locust.log")
    time.sleep(0.5)
    group = [p for p in psutil.process_iter() if _pgid(p) == run.child.pid]
    assert len(group) == 2
    started = time.monotonic()
    run.stop(timeout=3.0)
    took = time.monotonic() - started
    assert closed.exists() == waited
    if waited:
        assert took < 2.5  # as long as the worker needed, no longer
    elif master == "clean":
        assert 3.0 <= took < 4.0  # killed at the timeout
    else:
        assert took < 1.0  # nobody told that worker to quit: killed at once
    time.sleep(0.2)
    assert [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def test_the_capacity_table_shows_each_locust_process_and_who_took_the_cores() -> None:
    from lab.bench.capacity import _headroom_markdown

    one = {
        "users": 32,
        "rps": 5000.0,
        "p99_ms": 12.0,
        "failures": 0.0,
        "locust_cpu_cores": {"locust": 0.97},
        "app_cpu_cores": 0.8,
        "other_cpu_cores": 0.1,
    }
    two = {**one, "users": 64, "rps": 6000.0, "app_cpu_cores": 0.95,
           "locust_cpu_cores": {"master": 0.02, "worker 1": 0.5, "worker 2": 0.5}}  # fmt: skip
    lines = _headroom_markdown({"cores": 2, "duration_s": 10.0, "users_per_process": 32,
                                "setups": {"Locust x1": one, "Locust x2": two},
                                "throughput_ratio": 1.2})  # fmt: skip
    assert lines[2] == "| Locust x1 | 32 | 5,000 | 12 | 0 | locust 0.97 | 0.80 | 0.10 |"
    assert "master 0.02, worker 1 0.50, worker 2 0.50 | 0.95" in lines[3]
    averaged = {**one, "rounds_rps": [4900, 5100]}
    rounds = _headroom_markdown({"cores": 2, "duration_s": 10.0, "users_per_process": 32,
                                 "setups": {"Locust x1": averaged}})  # fmt: skip
    assert rounds[2].startswith("| Locust x1 | 32 | 5,000 (4,900, 5,100) | 12 |")
    assert lines[-1].startswith("x2/x1 throughput ratio: 1.20 (2 cores")
    skipped = _headroom_markdown({"cores": 1, "duration_s": 10.0, "users_per_process": 32,
                                  "setups": {"Locust x1": one,
                                             "Locust x2": {"skipped": "1 core(s)"}}})  # fmt: skip
    assert "| Locust x2 | skipped: 1 core(s) |" in skipped[3]
    assert skipped[-1].startswith("no ratio")


def test_a_capacity_setup_is_the_mean_of_its_rounds() -> None:
    from lab.bench.capacity import _mean_of

    a = {
        "processes": 2,
        "users": 64,
        "rps": 900.0,
        "p99_ms": 10.0,
        "locust_cpu_cores": {"master": 0.0, "worker 1": 0.4},
        "app_cpu_cores": 0.5,
    }
    b = {**a, "rps": 1100.0, "p99_ms": 30.0, "locust_cpu_cores": {"master": 0.02, "worker 1": 0.6}}
    mean = _mean_of([a, b])  # fmt: skip
    assert mean["rounds_rps"] == [900.0, 1100.0] and mean["rps"] == 1000.0
    assert mean["p99_ms"] == 20.0 and (mean["processes"], mean["users"]) == (2, 64)
    assert mean["locust_cpu_cores"] == pytest.approx({"master": 0.01, "worker 1": 0.5})
