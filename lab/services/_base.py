"""What every native service of the lab has in common.

A service is a daemon that outlives `lab up`: it is started detached, in its own
session, with its pid file and log under `lab_home()/<name>/`, and it is stopped
by `lab down`. `start()` is idempotent; `status()` never raises.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import psutil

from lab.errors import LabError
from lab.paths import lab_home

__all__ = [
    "REPO",
    "Service",
    "http_health",
    "listeners",
    "spawn_detached",
    "terminate_tree",
    "wait_gone",
]

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def listeners(ports: Sequence[int]) -> dict[int, int | None]:
    """port -> pid of the process listening on it (None when the owner is unknown)."""
    wanted = set(ports)
    found: dict[int, int | None] = {}
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted:
            found.setdefault(conn.laddr.port, conn.pid)
    return found


def spawn_detached(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:  # fmt: skip
    """Start `command` in a new session, detached from this process; return its pid.

    A shell starts it in the background and exits at once, so the daemon is
    re-parented to init: no Popen object is left to reap it or to warn about it,
    and it survives the `lab` command that started it (no PR_SET_PDEATHSIG here,
    unlike lab.processes.Child).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    script = 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'
    result = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(log_path), *command],
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        start_new_session=True,
        check=True,
    )
    return int(result.stdout.strip())


class Service(ABC):
    """One native service. Subclasses set the class attributes and the hooks."""

    name: ClassVar[str]
    rank: ClassVar[int]  # start order, lowest first; `lab down` stops in reverse
    requires: ClassVar[tuple[str, ...]] = ()  # started along with this one by `up --only`
    binary_name: ClassVar[str]
    install_hint: ClassVar[str]  # the exact command that installs the binary
    process_names: ClassVar[tuple[str, ...]] = ()  # what its processes are called
    start_timeout: ClassVar[float] = 30.0

    # -- where things are ---------------------------------------------------------

    @property
    @abstractmethod
    def port(self) -> int:
        """The port clients use (the API port for Toxiproxy)."""

    def ports(self) -> list[int]:
        """Every port it listens on: `lab down` checks that none is left."""
        return [self.port]

    @property
    def home(self) -> Path:
        return lab_home() / self.name

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.home / f"{self.name}.pid"

    def binary(self) -> str:
        """The server's executable; a LabError naming the install command when missing."""
        for candidate in self.binary_candidates():
            if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        raise LabError(f"{self.binary_name} not found: install it with {self.install_hint}")

    def binary_candidates(self) -> list[str | None]:
        return [shutil.which(self.binary_name)]

    # -- state ----------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid in the pid file when that process is alive and is this service."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return self._matches(proc)
        except psutil.Error:
            return False

    def _matches(self, proc: psutil.Process) -> bool:
        return proc.name() in self.process_names

    @abstractmethod
    def health(self) -> tuple[bool, str]:
        """(healthy, one word or short phrase). Never raises."""

    def version(self) -> str | None:
        """The running server's version, None when it does not answer."""
        return None

    def status(self) -> dict[str, Any]:
        pid = self.pid()
        healthy, health = self.health() if pid else (False, "not running")
        return {
            "name": self.name,
            "state": "up" if pid and healthy else "down",
            "port": self.port,
            "version": self.version() if pid and healthy else None,
            "health": health,
            "pid": pid,
            "log": str(self.log_path),
        }

    # -- life cycle ----------------------------------------------------------------

    def preflight(self) -> None:
        """Everything that can be checked before anything starts: binary, ports, dirs."""
        self.binary()
        if self.pid() is not None:
            return
        taken = listeners(self.ports())
        if taken:
            port, owner = next(iter(taken.items()))
            if owner is not None and owner in {p.pid for p in self.strays()}:
                raise LabError(
                    f"{self.name} cannot start: port {port} is held by pid {owner}, a "
                    f"{self.name} whose pid file is gone: `lab down` stops it"
                )
            who = f"pid {owner} ({_name_of(owner)})" if owner else "another process"
            raise LabError(
                f"{self.name} cannot start: port {port} is taken by {who}; stop it, or "
                "shift the lab's ports with LAB_PORT_OFFSET=<n>"
            )

    def start(self) -> bool:
        """Start the daemon unless it runs already. True when it was started now."""
        if self.pid() is not None:
            self.after_start()
            return False
        self.preflight()
        self.home.mkdir(parents=True, exist_ok=True)
        self.pid_path.unlink(missing_ok=True)
        self.launch()
        self.wait_healthy()
        self.after_start()
        return True

    @abstractmethod
    def launch(self) -> None:
        """Start the process detached and make sure `pid()` finds it."""

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Work done on every `lab up`, whether it was started now or not."""

    def wait_healthy(self) -> None:
        started = time.monotonic()
        health = "not started"
        while time.monotonic() - started < self.start_timeout:
            healthy, health = self.health()
            running = self.pid() is not None
            if healthy and running:
                return
            if not running and time.monotonic() - started > 2:
                health = "its process exited"  # a second or two to write its pid file
                break
            time.sleep(0.1)
        raise LabError(
            f"{self.name} did not come up ({health}); its log {self.log_path} ends with:\n"
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the daemon and every process it started. True when something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        terminate_tree(pid, timeout)
        self.pid_path.unlink(missing_ok=True)
        return True

    def strays(self) -> list[psutil.Process]:
        """Processes that hold this service's ports and look like it (a lost pid file)."""
        found = []
        for pid in sorted({pid for pid in listeners(self.ports()).values() if pid is not None}):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if self._matches(proc):
                    found.append(proc)
        return found


def terminate_tree(pid: int, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """`sig` to the process, wait, then SIGKILL it and whatever it started."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(psutil.Error):
        root.send_signal(sig)
    if not wait_gone([root], timeout):
        with contextlib.suppress(psutil.Error):
            root.kill()
    for proc in tree[1:]:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_gone(tree, 5)


def wait_gone(procs: Sequence[psutil.Process], timeout: float) -> bool:
    """Wait until none of `procs` runs (a zombie counts as gone: its parent reaps it)."""
    deadline = time.monotonic() + timeout
    while True:
        if not any(_running(proc) for proc in procs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def http_health(url: str) -> tuple[bool, str]:
    """(True, "ok") when GET `url` answers 200 within a second."""
    import httpx

    try:
        response = httpx.get(url, timeout=1.0)
    except httpx.TransportError as exc:
        return False, f"no answer ({exc.__class__.__name__})"
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}"
    return True, "ok"


def _name_of(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"
