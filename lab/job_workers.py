"""The job workers of a run: Dramatiq's CLI (target_app/worker.py), one child each.

They are the app's code with the app's environment (database, Redis, toggle
file, metrics directory), so a worker runs the variant that is on, and the app's
/metrics includes what the workers count. Like the app, each is a `Child`: in a
session of its own, killed with the lab even by SIGKILL, its whole tree stopped.

Dramatiq's CLI stops all its worker processes when one of them dies, and leaves
the restart to a supervisor (systemd, Kubernetes). In a run the lab is that
supervisor: `supervise()` starts a new worker in place of one that exited.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from lab.errors import LabError
from lab.processes import Child, tree_of

__all__ = ["JobWorkers", "worker_command"]

log = logging.getLogger("lab.job_workers")

READY_LINE = b"is ready for action"  # Dramatiq's CLI logs it once per worker process
THREADS = 1  # per worker process: one job at a time (see NICE)
# Production runs job workers on machines (or CPU quotas) of their own; here they
# share 2 cores with the app, Locust and PostgreSQL, so they run at a lower
# priority: they take the CPU the API leaves, as a separate host would leave
# the API's alone.
NICE = 10
# SIGTERM lets a worker finish the job in hand (Dramatiq's graceful stop); a job
# of the lab takes seconds, so past this the worker is killed and the queue
# gives its job to the next worker.
STOP_TIMEOUT_S = 20.0


def worker_command(threads: int = THREADS) -> list[str]:
    return [
        "nice", "-n", str(NICE), sys.executable, "-m", "dramatiq", "target_app.worker:setup",
        "--processes", "1", "--threads", str(threads),
    ]  # fmt: skip


class JobWorkers:
    """`count` worker CLIs; `start()` returns once each says it is ready."""

    def __init__(
        self, count: int, env: Mapping[str, str], log_path: Path | None, threads: int = THREADS
    ) -> None:
        self.count = count
        self.threads = threads
        self.env = dict(env)
        self.log_path = log_path
        self.children: list[Child] = []
        self.restarts = 0

    def _spawn(self) -> Child:
        child = Child("job-worker", worker_command(self.threads), self.env, self.log_path)
        self.children.append(child)
        return child

    def start(self, timeout: float = 60.0) -> None:
        for _ in range(self.count):
            self._spawn()
        self._wait_ready(timeout)

    def _ready_lines(self) -> int:
        if self.log_path is None:
            return self.count  # output on the terminal: nothing to read, trust the start
        try:
            return self.log_path.read_bytes().count(READY_LINE)
        except FileNotFoundError:
            return 0

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        wanted = self.count + self.restarts
        while time.monotonic() < deadline:
            dead = [c for c in self.children if not c.alive()]
            if dead:
                raise LabError(
                    f"a job worker exited during start-up (code {dead[0].process.poll()}); "
                    f"its last log lines, from {self.log_path}:\n{dead[0].tail()}"
                )
            if self._ready_lines() >= wanted:
                return
            time.sleep(0.2)
        raise LabError(
            f"the job workers were not ready within {timeout:.0f} s; see {self.log_path}"
        )

    def supervise(self) -> int:
        """Start a worker in place of each one that exited; how many were restarted."""
        restarted = 0
        for child in list(self.children):
            if child.alive():
                continue
            log.warning("job worker %s exited (code %s): starting another", child.pid,
                        child.process.poll())  # fmt: skip
            child.stop()  # its tree, and its log handle
            self.children.remove(child)
            self._spawn()
            self.restarts += 1
            restarted += 1
        return restarted

    def worker_pids(self) -> list[int]:
        """The processes that run jobs: each CLI's children (Dramatiq forks them)."""
        return [p.pid for c in self.children if c.alive() for p in tree_of(c.pid)[1:]]

    def stop(self) -> None:
        for child in self.children:
            child.stop(signal.SIGTERM, timeout=STOP_TIMEOUT_S)
