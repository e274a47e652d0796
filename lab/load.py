"""Locust, headless, with its CSVs in the run dir: one process, or a master and N workers.

With `load_processes` > 1 Locust runs distributed on this machine (its own
`--processes N`): the master forks N workers, runs the load shape, gathers their
stats and writes the CSVs and the HTML report; each worker runs its share of the
users and writes its own `requests.part<N>.csv`, which the runner merges into
the one requests.csv the reports read (`loadtests.request_log.merge_parts`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

import loadtests
from lab.processes import Child, free_port, tree_of

__all__ = ["STOP_TIMEOUT_S", "LoadConfig", "LocustRun", "latest_stats"]

LOCUSTFILE = Path(loadtests.__file__).parent / "locustfile.py"
# From SIGINT to a killed session: Locust's --stop-timeout (2 s for its users), then
# its CSVs and HTML report, on a busy machine.
STOP_TIMEOUT_S = 15.0


@dataclass
class LoadConfig:
    workload: str = "shop"
    shape: str = "constant"
    users: int = 50
    spawn_rate: float = 50.0
    duration_s: float = 30.0
    seed_rows: int = 10_000
    rate: float | None = None  # requests/s offered over all processes (open model); None: closed
    load_processes: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "workload": self.workload,
            "shape": self.shape,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration_s": self.duration_s,
            "rate": self.rate,
            "load_processes": self.load_processes,
        }


class LocustRun:
    def __init__(self, config: LoadConfig, host: str, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        # The shape stops the load at duration_s. No --run-time: with a shape Locust
        # starts its clock only once the shape has ended (and warns that it ignores it);
        # the runner's watch, and the caller's timeout, are the backstop.
        self.command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", host, "--csv", str(run_dir / "locust"),
            "--csv-full-history", "--html", str(run_dir / "locust.html"),
            "--stop-timeout", "2",
            "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
        ]  # fmt: skip
        if config.load_processes > 1:
            # The master listens for its workers on 5557 by default, on every interface:
            # a free port on loopback lets runs side by side (tests, bench) not collide.
            port = str(free_port())
            self.command += [
                "--processes", str(config.load_processes), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", port, "--master-port", port,
            ]  # fmt: skip
        self.env = {
            **os.environ,
            "LAB_WORKLOAD": config.workload,
            "LAB_SHAPE": config.shape,
            "LAB_USERS": str(config.users),
            "LAB_SPAWN_RATE": str(config.spawn_rate),
            "LAB_DURATION": str(config.duration_s),
            "LAB_SEED_ROWS": str(config.seed_rows),
            "LAB_REQUEST_LOG": str(run_dir / "requests.csv"),
            # Set even when empty: a LAB_RATE left in the user's shell must not make
            # a closed run open.
            "LAB_RATE": "" if config.rate is None else repr(config.rate),
            "LAB_LOAD_PROCESSES": str(config.load_processes),
        }
        self.child: Child | None = None

    def start(self) -> None:
        self.child = Child("locust", self.command, self.env, self.run_dir / "locust.log")

    def running(self) -> bool:
        return self.child is not None and self.child.alive()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGINT, Locust's graceful stop (it still writes its CSVs and HTML); then, after
        `timeout` at most, its whole session killed: no worker outlives the run."""
        if self.child is None:
            return
        deadline = time.monotonic() + timeout
        # The master's forked workers, taken before it exits and they are re-parented.
        workers = tree_of(self.child.pid)[1:]
        if self.child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.process.wait(timeout=timeout)
        # Distributed, the master tells its workers to quit but does not wait for them:
        # its exit hook (locust/main.py, kill_workers) polls each with WNOHANG once and
        # takes a running worker for a finished one. They stay in its process group
        # (forked, the master was its leader), and are waited for here, so that each
        # has closed its request log before the session is killed. Only after a clean
        # shutdown (exit code 0), which sent them `quit`: a master interrupted before its
        # runner existed dies of the KeyboardInterrupt, and its workers wait for it.
        clean = self.child.process.poll() == 0
        while clean and _any_running(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.child.stop(sig=signal.SIGINT, timeout=max(deadline - time.monotonic(), 0.0))


def _any_running(procs: list[psutil.Process]) -> bool:
    """Whether one of these processes still runs (a zombie has finished)."""
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:  # gone meanwhile
            continue
    return False


def latest_stats(run_dir: Path) -> dict[str, float]:
    """The newest 'Aggregated' row of locust_stats_history.csv, for the live progress line."""
    path = run_dir / "locust_stats_history.csv"
    try:
        with path.open() as handle:
            size = path.stat().st_size
            handle.seek(max(size - 4096, 0))
            tail = handle.read().splitlines()
        with path.open() as handle:
            header = next(csv.reader(handle))
    except (FileNotFoundError, StopIteration):
        return {}
    for line in reversed(tail):
        row = next(csv.reader([line]), [])
        if len(row) == len(header) and "Aggregated" in row:
            record = dict(zip(header, row, strict=True))
            out: dict[str, float] = {}
            for key, name in (
                ("Requests/s", "rps"), ("95%", "p95_ms"), ("User Count", "users"),
                ("Total Request Count", "requests"), ("Total Failure Count", "failures"),
            ):  # fmt: skip
                try:
                    out[name] = float(record[key])
                except (KeyError, ValueError):
                    continue
            return out
    return {}
