"""Locust, headless, with its CSVs in the run dir."""

from __future__ import annotations

import csv
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import loadtests
from lab.processes import Child

__all__ = ["LoadConfig", "LocustRun", "latest_stats"]

LOCUSTFILE = Path(loadtests.__file__).parent / "locustfile.py"


@dataclass
class LoadConfig:
    workload: str = "shop"
    shape: str = "constant"
    users: int = 50
    spawn_rate: float = 50.0
    duration_s: float = 30.0
    seed_rows: int = 10_000

    def as_dict(self) -> dict[str, object]:
        return {
            "workload": self.workload,
            "shape": self.shape,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration_s": self.duration_s,
        }


class LocustRun:
    def __init__(self, config: LoadConfig, host: str, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        # The shape stops the load at duration_s; --run-time is the backstop.
        self.command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", host, "--csv", str(run_dir / "locust"),
            "--csv-full-history", "--html", str(run_dir / "locust.html"),
            "--run-time", f"{int(config.duration_s) + 5}s", "--stop-timeout", "2",
            "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
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
        }
        self.child: Child | None = None

    def start(self) -> None:
        self.child = Child("locust", self.command, self.env, self.run_dir / "locust.log")

    def running(self) -> bool:
        return self.child is not None and self.child.alive()

    def stop(self) -> None:
        # SIGINT is Locust's graceful stop: it still writes its CSVs and HTML.
        if self.child is not None:
            self.child.stop(sig=signal.SIGINT, timeout=15.0)


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
