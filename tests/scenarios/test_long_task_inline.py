"""long-task-inline: the job run in the request vs queued (Dramatiq on Redis) and run by
a worker process, exactly once, also when that worker is killed with SIGKILL mid-job.

The jobs' effects are counted in PostgreSQL after each run: every job's row, and
its snapshot rows (each product of its scope once), not by any counter of the app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from tests.scenarios.contract import REPO, assert_symptoms, direct_database_url, run_variant

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

SLUG = "long-task-inline"
JOB_ROWS = 100_000  # loadtests/workloads/etl_jobs.py: products per job


def _jobs(url: str) -> dict[int, dict[str, Any]]:
    """Every job's row, with what its target holds, as PostgreSQL counts it."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT j.id, j.status, j.attempts, j.rows_expected,"
                    " count(s.product_id) AS rows, count(DISTINCT s.product_id) AS products,"
                    # The job's time as the database's clock saw it: its row's insert
                    # to its last commit (both are now(), the transaction's start).
                    " 1000 * EXTRACT(EPOCH FROM j.finished_at - j.started_at) AS job_ms"
                    " FROM etl_jobs j LEFT JOIN product_snapshots s ON s.job_id = j.id"
                    " GROUP BY j.id ORDER BY j.id"
                )
            ).mappings()
            return {row["id"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def _assert_each_done_exactly_once(jobs: dict[int, dict[str, Any]]) -> None:
    assert jobs, "no job was recorded"
    for job_id, job in jobs.items():
        assert job["status"] == "done", (job_id, job)
        # Each product of the job's scope, once: nothing lost, nothing written twice.
        assert job["rows"] == job["products"] == job["rows_expected"] == JOB_ROWS, (job_id, job)


def test_long_task_inline_queued_jobs_answer_at_once_and_run_exactly_once(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres", "redis")
    url = direct_database_url()
    # Each variant's `prepare` empties the ETL tables: the jobs are counted after each.
    # 30 s: 15 submissions at the default 0.5 a second, each a 100,000-row job.
    faulty = run_variant(SLUG, False, tmp_path / "faulty", env, duration="30s")
    faulty_jobs = _jobs(url)
    fixed = run_variant(SLUG, True, tmp_path / "fixed", env, duration="30s")
    fixed_jobs = _jobs(url)
    assert_symptoms(SLUG, faulty, fixed)

    # Both ran every submitted job to its end, exactly once: inline before each
    # answer, queued after the answer (the run waits for its queue to drain).
    _assert_each_done_exactly_once(faulty_jobs)
    _assert_each_done_exactly_once(fixed_jobs)
    assert faulty["error_rate"] == 0 and fixed["error_rate"] == 0
    # Every answered submission is a job (one more: a submission the load's end cut off).
    for run, jobs in ((faulty, faulty_jobs), (fixed, fixed_jobs)):
        assert run["requests"] <= len(jobs) <= run["requests"] + 1, (run["requests"], len(jobs))
    # The client waits out the job in the faulty variant: each answer comes after its
    # job's last commit, so every latency, and so the median, is at least the shortest
    # job's time as PostgreSQL recorded it (whatever this machine's speed makes it).
    shortest_job_ms = min(float(job["job_ms"]) for job in faulty_jobs.values())
    assert faulty["p50_ms"] >= shortest_job_ms, (faulty["p50_ms"], shortest_job_ms)
    # The queued answers do not wait for the job: a small fraction of its time.
    assert fixed["p50_ms"] * 10 < shortest_job_ms, (fixed["p50_ms"], shortest_job_ms)


# --- SIGKILL mid-job -----------------------------------------------------------------


def _job_worker_processes(lab: psutil.Process) -> list[psutil.Process]:
    """The processes that run jobs: the children of each Dramatiq CLI the lab started."""
    workers = []
    for proc in lab.children(recursive=True):
        try:
            if "target_app.worker:setup" in " ".join(proc.cmdline()):
                workers += proc.children()
        except psutil.Error:
            continue
    return workers


def _running_mid_job(url: str) -> int | None:
    """A job that has committed a chunk and not its last one: a kill now is mid-job."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            job_id = conn.scalar(
                text(
                    "SELECT id FROM etl_jobs WHERE status = 'running'"
                    " AND last_product_id > 0 AND last_product_id < until_product_id"
                    " ORDER BY id LIMIT 1"
                )
            )
            return None if job_id is None else int(job_id)
    finally:
        engine.dispose()


def test_a_worker_killed_mid_job_loses_nothing_and_doubles_nothing(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres", "redis")
    url = direct_database_url()
    args = [sys.executable, "-m", "lab.cli", "run", SLUG, "--fixed", "--out", str(tmp_path),
            "--duration", "30s"]  # fmt: skip
    lab = subprocess.Popen(
        args, env={**os.environ, **env}, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    killed: int | None = None
    try:
        deadline = time.monotonic() + 90
        while killed is None and time.monotonic() < deadline and lab.poll() is None:
            job_id = _running_mid_job(url)
            workers = _job_worker_processes(psutil.Process(lab.pid))
            if job_id is not None and workers:
                for worker in workers:
                    worker.send_signal(signal.SIGKILL)
                # Killed mid-job only if the job had not finished meanwhile.
                if _jobs(url)[job_id]["status"] == "running":
                    killed = job_id
            time.sleep(0.05)
        events = _follow(tmp_path, killed) if killed is not None else []
        _, stderr = lab.communicate(timeout=300)
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGKILL)
    assert killed is not None, "no job was seen running mid-job within 90 s"
    assert lab.returncode == 0, stderr[-3000:]

    jobs = _jobs(url)
    # The killed job ran again (the queue gave its unacknowledged message to the
    # worker the lab started in place of the dead one), resumed from its checkpoint
    # and holds each product once; so does every other job of the run.
    assert jobs[killed]["attempts"] >= 2, jobs[killed]
    _assert_each_done_exactly_once(jobs)
    # The lab saw the worker's CLI exit and started another in its place. (Not
    # Dramatiq's own "exited unexpectedly" line in job-workers.log: its CLI may stop
    # its log-watcher thread before that line has been read from its pipe.)
    assert "starting another" in stderr, stderr[-3000:]
    # The client that followed the killed job was told when it was done: first its
    # state then (running), later the completion the second worker published.
    assert events[0]["status"] == "running", events
    assert events[-1]["state"] == "done" and events[-1]["report"]["duplicate_rows"] == 0, events


def _follow(out: Path, job_id: int) -> list[dict[str, Any]]:
    """The job's Server-Sent Events, read as a browser's EventSource would, to its end."""
    meta = json.loads(next(out.glob("*/meta.json")).read_text())
    url = f"http://127.0.0.1:{meta['app']['port']}/etl/jobs/{job_id}/events"
    events = []
    with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=90)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events
