"""`lab run --load-processes 2`: Locust as a master and two workers, one requests.csv
merged from both, and no Locust process left after the run, whether it ended or was
interrupted (Ctrl-C in the middle of the load, or before the workers got any users)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from lab.load import STOP_TIMEOUT_S

pytestmark = pytest.mark.integration

USERS = 10


@dataclass
class Watched:
    """What the test saw of a run while it went: its dir, its Locust processes, the parts."""

    run_dir: Path | None = None
    locust: dict[int, psutil.Process] = field(default_factory=dict)
    parts: set[str] = field(default_factory=set)


def _start(out: Path, lab_home: Path, duration: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "run", "memory-leak", "--load-processes", "2",
         "--duration", duration, "--users", str(USERS), "--rows", "2000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LAB_HOME": str(lab_home), "COLUMNS": "200"},
        # Its own session: the test's own SIGINT disposition must not reach the lab.
        start_new_session=True,
    )  # fmt: skip


def _look(lab: subprocess.Popen[str], out: Path, seen: Watched) -> None:
    if seen.run_dir is None and out.exists():
        found = [d for d in out.iterdir() if (d / "meta.json").exists()]
        seen.run_dir = found[0] if found else None
    if seen.run_dir is not None:
        seen.parts |= {p.name for p in seen.run_dir.glob("requests.part*.csv")}
    try:
        children = psutil.Process(lab.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for child in children:
        try:
            if "locust" in " ".join(child.cmdline()):
                seen.locust.setdefault(child.pid, child)
        except psutil.Error:
            continue


def _watch_until(
    lab: subprocess.Popen[str], out: Path, seen: Watched,
    done: Callable[[Watched], bool] | None, timeout: float,
) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and lab.poll() is None:
        _look(lab, out, seen)
        if done is not None and done(seen):
            return
        time.sleep(0.2)


def _no_locust_left(seen: Watched) -> None:
    time.sleep(0.5)
    alive = [
        p for p in seen.locust.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], f"orphans: {[p.cmdline() for p in alive]}"


def _rows(path: Path) -> list[tuple[str, ...]]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader)[:5] == ["start", "name", "ms", "bytes", "ok"]
        return [tuple(row) for row in reader]


def _locust_total(run_dir: Path) -> int:
    with (run_dir / "locust_stats.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"])
    raise AssertionError("no Aggregated row in locust_stats.csv")


def _merged_log_holds_every_request(run_dir: Path) -> int:
    assert sorted(run_dir.glob("requests.part*.csv")) == []  # merged, then removed
    rows = _rows(run_dir / "requests.csv")
    starts = [float(row[0]) for row in rows]
    assert starts == sorted(starts)
    assert len(set(rows)) == len(rows)  # no part merged twice
    total = _locust_total(run_dir)
    # Every request Locust counted is in the log: a worker's part lost would halve it.
    # It may hold a few more: requests its workers reported after the master's last
    # snapshot (it waits 0.5 s for their final reports), hence the 5 %.
    assert total <= len(rows) <= total * 1.05, (len(rows), total)
    return total


@pytest.mark.timeout(180)
def test_a_distributed_run_merges_both_workers_requests_and_leaves_no_process(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    out, seen = tmp_path / "runs", Watched()
    lab = _start(out, lab_home, "5s")
    try:
        _watch_until(lab, out, seen, None, timeout=120)
        stdout, stderr = lab.communicate(timeout=60)
    finally:
        if lab.poll() is None:
            lab.kill()

    assert lab.returncode == 0, stderr
    assert seen.run_dir is not None and stdout.strip().splitlines()[-1] == str(seen.run_dir)
    # The master and two workers forked from it; each worker wrote its own part.
    assert len(seen.locust) == 3, [p.pid for p in seen.locust.values()]
    assert seen.parts == {"requests.part0.csv", "requests.part1.csv"}
    _no_locust_left(seen)
    meta = json.loads((seen.run_dir / "meta.json").read_text())
    assert meta["status"] == "completed"
    assert meta["load"]["load_processes"] == 2 and meta["load"]["rate"] is None
    assert "cleanup_errors" not in meta, meta.get("cleanup_errors")
    assert _merged_log_holds_every_request(seen.run_dir) > 0
    summary = json.loads((seen.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["requests"] > 0
    assert (seen.run_dir / "locust.html").exists()  # written by the master


def _under_load(seen: Watched) -> bool:
    history = seen.run_dir / "locust_stats_history.csv" if seen.run_dir else None
    return bool(history and history.exists() and history.stat().st_size > 500)


def _workers_forked(seen: Watched) -> bool:
    return len(seen.locust) >= 3


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "when", [_under_load, _workers_forked], ids=["mid-load", "before-the-workers-got-users"]
)
def test_an_interrupted_distributed_run_stops_every_locust_process(
    tmp_path: Path, lab_home: Path, seeded_db: str, when: Callable[[Watched], bool]
) -> None:
    out, seen = tmp_path / "runs", Watched()
    lab = _start(out, lab_home, "60s")
    try:
        _watch_until(lab, out, seen, when, timeout=90)
        assert lab.poll() is None and when(seen), "the run never got there"
        signalled = datetime.now(UTC)
        os.kill(lab.pid, signal.SIGINT)  # Ctrl-C, to the lab alone
        _stdout, stderr = lab.communicate(timeout=90)
    finally:
        if lab.poll() is None:
            lab.kill()

    assert lab.returncode == 130, stderr
    assert len(seen.locust) == 3
    _no_locust_left(seen)
    assert seen.run_dir is not None
    meta = json.loads((seen.run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    assert "cleanup_errors" not in meta, meta.get("cleanup_errors")
    assert sorted(seen.run_dir.glob("requests.part*.csv")) == []
    if when is _under_load:
        _merged_log_holds_every_request(seen.run_dir)
        assert (seen.run_dir / "locust.html").exists()  # the master heard its SIGINT
    # Locust stopped on its SIGINT, not killed at the stop timeout.
    stopped = datetime.fromisoformat(meta["load_ended_at"]) - signalled
    assert stopped.total_seconds() < STOP_TIMEOUT_S, stopped
