"""A run with job workers, stopped by Ctrl-C or killed with SIGKILL: no worker survives it.

The workers are Dramatiq CLIs the lab starts beside the app (lab/job_workers.py),
each in a session of its own with PR_SET_PDEATHSIG: Ctrl-C stops them with the
run's undo (SIGTERM, the job in hand finished), and a SIGKILL of the lab reaches
them as the SIGTERM the kernel sends when their parent dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.scenarios.contract import REPO

pytestmark = [pytest.mark.integration, pytest.mark.services]

SLUG = "long-task-inline"


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _is_worker(proc: psutil.Process) -> bool:
    try:
        return "target_app.worker:setup" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_stopped_run_leaves_no_job_worker(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]], sig: signal.Signals
) -> None:
    env = lab_services("postgres", "redis")
    lab = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "run", SLUG, "--fixed", "--duration", "60s",
         "--out", str(tmp_path)],
        env={**os.environ, **env}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        tree: list[psutil.Process] = []
        while time.monotonic() < deadline:
            tree = _tree(lab.pid)
            workers = [p for p in tree if _is_worker(p)]
            logs = list(tmp_path.glob("*/requests.csv"))
            # Under load, with a worker and the process it forked to run jobs.
            if (
                workers
                and any(_tree(w.pid) for w in workers)
                and logs
                and (logs[0].stat().st_size > 100)
            ):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the run never got under load with its job worker:\n{lab.stderr}")
        tree = _tree(lab.pid)  # everything the run started, workers' children included
        assert any(_is_worker(p) for p in tree)
        lab.send_signal(sig)
        lab.communicate(timeout=120)
    finally:
        if lab.poll() is None:
            lab.kill()
    if sig == signal.SIGINT:
        assert lab.returncode == 130
    # SIGKILL: the kernel's SIGTERM reaches each worker CLI, which lets its worker
    # finish the job in hand (seconds) and exits; allow the lab's own stop timeout.
    deadline = time.monotonic() + 30
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = _alive(tree)
    assert survivors == [], f"orphans: {[p.cmdline() for p in survivors]}"
