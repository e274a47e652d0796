"""py-spy: where the CPU goes, sampled from outside the app (`py-spy record --pid`).

A recording writes one format, and py-spy has no command to turn one format
into another; the lab wants two: the speedscope JSON (the report's table of
hottest functions reads it, speedscope.app opens it) and py-spy's own
flamegraph SVG (searchable, zoomable, opens in any browser). So two recorders
sample the same processes, one per format. Measured on this 2-core machine, a
recorder at 100 Hz on a loaded uvicorn app costs about 4% of one core (0.43 s
of CPU over 10 s, `--subprocesses --nonblocking`), the second one as much: 2%
of the machine, within the run-to-run noise of the load's own throughput. The
other ways were worse: `--format raw` once, then a renderer of ours, is the
hand-written SVG this replaces; parsing py-spy's SVG back into stacks for the
table ties the lab to its markup. `--nonblocking` keeps both from pausing the
app at every sample, so latency stays honest.

The SVG's widths count every sample py-spy kept, including the idle waits it
caught a thread waking from; the table's shares are of busy samples only
(lab/profilers/speedscope.py says which leaves are idle).

py-spy writes its file on SIGINT, and also on its own when the target exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.processes import die_with_parent
from lab.profilers._common import BaseProfiler, rel, tool
from lab.profilers.speedscope import pyspy_top

__all__ = ["PySpyProfiler", "cleanup"]

# py-spy recorders still running, so that `cleanup()` (also run at exit) can stop them.
_LIVE: set[subprocess.Popen[bytes]] = set()


def _stop_children(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGINT to all (py-spy writes its file on it), wait for each, SIGKILL late ones.

    All are signalled first, so that they write their files at the same time. Never raises.
    """
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        _LIVE.discard(proc)


def cleanup() -> None:
    """Stop every profiler child this process started and has not stopped yet."""
    _stop_children(list(_LIVE), timeout=5.0)


atexit.register(cleanup)


class PySpyProfiler(BaseProfiler):
    """Samples the running app (and its worker processes) with `py-spy record --pid`."""

    name = "py-spy"

    def __init__(self, run_dir: Path, *, rate: int = 100, stop_timeout: float = 30.0) -> None:
        super().__init__(run_dir)
        self.rate = rate
        self.stop_timeout = stop_timeout
        self.speedscope = self._file("pyspy.speedscope.json")
        self.svg = self._file("pyspy-flamegraph.svg")
        self.log = self._file("pyspy.log")
        self.flamegraph_command: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._started = 0.0
        self._stopped = 0.0

    def wrap(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        return list(command), dict(env)  # py-spy attaches from outside

    def _record(self, app_pid: int, fmt: str, out: Path) -> list[str]:
        return [
            tool("py-spy"), "record", "--pid", str(app_pid),
            "--subprocesses",   # gunicorn: the master's workers too
            "--nonblocking",    # don't pause the app at every sample: keeps latency honest
            "--format", fmt, "-o", str(out), "--rate", str(self.rate),
        ]  # fmt: skip

    def attach(self, app_pid: int) -> None:
        if self._procs:
            raise RuntimeError("py-spy is already attached")
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.command = self._record(app_pid, "speedscope", self.speedscope)
        self.flamegraph_command = self._record(app_pid, "flamegraph", self.svg)
        with self.log.open("ab") as log:
            for command in (self.command, self.flamegraph_command):
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C in the terminal must not reach py-spy before
                    # the lab decides; the lab sends SIGINT itself in detach().
                    start_new_session=True,
                    # Safe with threads: die_with_parent only calls prctl (libc preloaded).
                    preexec_fn=die_with_parent,  # noqa: PLW1509
                )
                self._procs.append(proc)
                _LIVE.add(proc)
        self._started = time.monotonic()

    def detach(self) -> None:
        running = [p for p in self._procs if p.poll() is None or p in _LIVE]
        if running:
            _stop_children(running, self.stop_timeout)
            self._stopped = self._stopped or time.monotonic()

    def finalize(self) -> dict[str, Any]:
        errors: list[str] = []
        top: list[dict[str, Any]] = []
        extra: dict[str, Any] = {"rate": self.rate, "flamegraph_command": self.flamegraph_command}
        try:
            self.detach()  # the runner should have; harmless if it did
            if not self._procs:
                errors.append("py-spy never attached to the app: no samples")
            else:
                extra["seconds"] = round((self._stopped or time.monotonic()) - self._started, 1)
                for path, proc in zip((self.speedscope, self.svg), self._procs, strict=True):
                    if not path.exists() or path.stat().st_size == 0:
                        errors.append(
                            f"py-spy wrote no {rel(self.run_dir, path)} "
                            f"(exit code {proc.returncode}; {self._log_tail()})"
                        )
            if self.speedscope.exists() and self.speedscope.stat().st_size > 0:
                top, busy, idle = pyspy_top(json.loads(self.speedscope.read_text()))
                extra.update(samples=busy, idle_samples=idle)
                if busy == 0:
                    errors.append("py-spy recorded no busy samples (was there any load?)")
        except Exception as exc:  # finalize never raises: the run's other files matter more
            errors.append(f"py-spy profile: {type(exc).__name__}: {exc}")
        return self._write_profile(
            {"speedscope": self.speedscope, "flamegraph": self.svg, "log": self.log},
            "Hottest functions (self share of busy samples; total = on the stack)",
            top, errors, **extra,
        )  # fmt: skip

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1].strip()
        return "no output"
