"""Child processes that never outlive the lab.

Every child starts in its own session, so a Ctrl-C in the terminal reaches the
lab alone and the lab stops its children in the right order (load first, then
profilers, then the app, so that each writes its files). Each child also gets
PR_SET_PDEATHSIG, so that even a `kill -9` of the lab takes its children with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

__all__ = ["Child", "die_with_parent", "free_port", "tree_of"]

_PR_SET_PDEATHSIG = 1
try:
    # Loaded in the parent: a preexec_fn runs between fork and exec, where loading a
    # library (malloc, locks) is not safe if the parent has threads.
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to this child when the lab dies, even by SIGKILL.

    Caveat of PR_SET_PDEATHSIG: "parent" is the *thread* that forked the child, so
    children are started from the main thread, which lives as long as the run.

    SIGINT is also put back to its default. A lab started in the background by a
    script (`lab run ... &`, where the shell ignores SIGINT) would pass the ignore on,
    and Locust would not hear the SIGINT that makes it write its CSVs and HTML report
    and exit: it was killed 15 s later without them. Children are in sessions of their
    own, so no terminal's Ctrl-C reaches them: SIGINT comes from the lab alone.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # sigaction: safe between fork and exec
    if _LIBC is None:  # pragma: no cover - not Linux: the lab's own cleanup still runs
        return
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:
        # The lab died between fork and prctl: nobody will send the signal any more.
        os._exit(1)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tree_of(pid: int) -> list[psutil.Process]:
    """The process and all its descendants that are still alive."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class Child:
    """A subprocess in its own session, with its output in a log file.

    `log_path=None`: the child writes to the lab's own stdout and stderr (`lab serve`
    in a terminal); it is in its own session all the same.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        log_path: Path | None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self._log: IO[bytes] | None = log_path.open("ab") if log_path is not None else None
        self.process = subprocess.Popen(
            self.command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl; libc preloaded
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Ask politely (`sig` to the leader), then kill the whole session. Idempotent."""
        # Remember the tree now: once the leader is gone its children are re-parented.
        tree = tree_of(self.pid)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        code = self.process.wait(timeout=5) if self.process.poll() is None else self.process.poll()
        if self._log is not None:
            self._log.close()
        return code
