"""target_app/scheduler.py in one process: the digest's ticks, its rows and /metrics.

One process runs each tick once in either variant; what several workers do is the
contract test's (tests/scenarios/test_in_process_scheduler.py, PostgreSQL and Redis).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from faults.in_process_scheduler import (
    ClaimParams,
    EveryProcess,
    RedisTickLock,
    TickLockUnavailable,
)
from target_app.scheduler import EPOCH, tick_of
from tests.app.helpers import lab_settings, open_lab

pytestmark = pytest.mark.unit


def test_a_tick_is_counted_from_the_epoch_so_every_process_agrees() -> None:
    assert tick_of(EPOCH, 2.0) == 0
    assert tick_of(EPOCH + timedelta(seconds=1.999), 2.0) == 0
    assert tick_of(EPOCH + timedelta(seconds=2), 2.0) == 1
    assert tick_of(EPOCH + timedelta(hours=1, seconds=1), 3600.0) == 1


def test_the_faulty_claim_takes_every_tick_and_the_fixed_one_needs_redis() -> None:
    params = ClaimParams()
    # A second process asking for the same tick gets it too.
    claims = [asyncio.run(EveryProcess(params).claim("sales-digest", 7, 2.0, None)) for _ in "ab"]
    assert claims == [True, True]
    with pytest.raises(TickLockUnavailable, match="REDIS_URL"):
        asyncio.run(RedisTickLock(params).claim("sales-digest", 7, 2.0, None))


def _digests(database: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT tick, sent_by FROM sales_digests ORDER BY id").fetchall()


@pytest.mark.parametrize("faulty", [False, True])
def test_one_process_sends_each_tick_once_and_metrics_count_the_rows(
    writable_db: Path, tmp_path: Path, faulty: bool
) -> None:
    """The fixed variant without Redis skips its ticks (logged), the faulty one sends them:
    in one process, one row per tick; /metrics counts what the table holds."""
    settings = lab_settings(
        tmp_path / "lab", writable_db, scheduler_enabled=True, scheduler_interval_s=0.5
    )
    with open_lab(settings) as lab:
        if faulty:
            lab.enable("in-process-scheduler")
        # Three ticks sent, or (fixed, none to come) three intervals without one.
        deadline = time.monotonic() + (10 if faulty else 1.6)
        while time.monotonic() < deadline and len(_digests(writable_db)) < 3:
            time.sleep(0.1)
        metrics = lab.client.get("/metrics").text
    digests = _digests(writable_db)
    if not faulty:
        assert digests == []  # no Redis, no lock: no tick is run rather than one per worker
        return
    assert len(digests) >= 3
    ticks = [tick for tick, _ in digests]
    assert len(set(ticks)) == len(ticks), digests  # one process: one send per tick
    assert ticks == sorted(ticks)
    runs = _gauge(metrics, "periodic_job_runs")
    assert runs >= 3 and _gauge(metrics, "periodic_job_ticks") == runs


def _gauge(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(f'{name}{{task="sales-digest"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")
