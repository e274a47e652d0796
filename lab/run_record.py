"""`meta.json`: what a run is and how it went, owned by one typed record.

Every change goes through a method of `RunRecord`, which rewrites meta.json
atomically (a temporary file, then a rename), so that a reader (a report of an
interrupted run, `lab dashboard snapshot`, a test watching a run) never sees
half a file, and a run killed at any point leaves the last complete state.
The keys and their meaning are docs/run-dir.md's; reports/ reads them as a dict.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import psutil

import lab

__all__ = ["FORMAT", "AppRecord", "Machine", "RunRecord", "Status", "now"]

#: meta.json's layout version: bumped when a key changes meaning or goes away.
FORMAT = 1

Status = Literal["running", "completed", "interrupted", "failed"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "lab": lab.__version__}
    for dist in ("fastapi", "uvicorn", "gunicorn", "locust", "sqlalchemy", "py-spy", "memray"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class AppRecord:
    server: str  # uvicorn | gunicorn
    workers: int
    host: str
    port: int
    state_file: str  # the fault toggles the app reads
    command: list[str] = field(default_factory=list)  # as started, profiler wrapper included
    worker_class: str = "uvicorn"  # uvicorn | gthread (gunicorn's threaded WSGI worker)
    threads: int = 1  # gthread: requests one worker serves at once
    pid: int | None = None  # the app's process (gunicorn: its master), once it started


@dataclass
class Machine:
    hostname: str
    cpus: int | None
    memory_gb: float
    platform: str

    @classmethod
    def this(cls) -> Machine:
        return cls(
            hostname=socket.gethostname(),
            cpus=os.cpu_count(),
            memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
            platform=platform.platform(),
        )


@dataclass
class RunRecord:
    """One run's meta.json. Create it with the run's plan, then change it only by its methods."""

    path: Path  # meta.json itself; not a key of it
    run_id: str
    scenario: str
    title: str
    seeds: list[int]
    kind: str
    variant: str
    params: dict[str, Any]
    symptom: dict[str, Any]
    load: dict[str, object]
    app: AppRecord
    profile: str
    status: Status = "running"
    error: str | None = None
    started_at: str = field(default_factory=now)
    load_started_at: str | None = None
    load_ended_at: str | None = None
    ended_at: str | None = None
    versions: dict[str, str] = field(default_factory=_versions)
    git_commit: str | None = field(default_factory=git_commit)
    machine: Machine = field(default_factory=Machine.this)
    toxics: list[dict[str, Any]] = field(default_factory=list)  # as installed
    prometheus: str | None = None  # the Prometheus that scraped the app, if one did
    cleanup_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """meta.json's content, keys in docs/run-dir.md's order."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "run_id": self.run_id,
            "scenario": self.scenario, "title": self.title, "seeds": list(self.seeds),
            "kind": self.kind, "variant": self.variant,
            "params": self.params, "symptom": self.symptom, "load": self.load,
            "app": asdict(self.app), "profile": self.profile,
            "status": self.status, "error": self.error,
            "started_at": self.started_at, "load_started_at": self.load_started_at,
            "load_ended_at": self.load_ended_at, "ended_at": self.ended_at,
            "versions": self.versions, "git_commit": self.git_commit,
            "machine": asdict(self.machine),
            "toxics": self.toxics, "prometheus": self.prometheus,
        }  # fmt: skip
        if self.cleanup_errors:  # absent means a clean teardown (tests check for the key)
            out["cleanup_errors"] = list(self.cleanup_errors)
        return out

    def write(self) -> None:
        """meta.json, atomically: readers see the old file or the new one, never a part."""
        fd, name = tempfile.mkstemp(prefix=".meta-", suffix=".tmp", dir=self.path.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self.as_dict(), handle, indent=2, default=str)
            tmp.replace(self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # The changes a run makes, each written at once.

    def app_command(self, command: list[str]) -> None:
        self.app.command = list(command)
        self.write()

    def app_started(self, pid: int | None) -> None:
        self.app.pid = pid
        self.write()

    def load_started(self) -> None:
        self.load_started_at = now()
        self.write()

    def load_ended(self) -> None:
        self.load_ended_at = now()
        self.write()

    def toxics_applied(self, toxics: list[dict[str, Any]]) -> None:
        self.toxics = list(toxics)
        self.write()

    def scraped_by(self, prometheus_url: str | None) -> None:
        self.prometheus = prometheus_url
        self.write()

    def cleanup_failed(self, errors: list[str]) -> None:
        """Clean-up steps that failed, as "step: error"; added to those already recorded."""
        if errors:
            self.cleanup_errors.extend(errors)
            self.write()

    def finish(self, status: Status, error: str | None) -> None:
        self.status, self.error, self.ended_at = status, error, now()
        self.write()
