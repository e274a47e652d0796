"""Profilers for a run: py-spy (where the CPU goes) and memray (where the memory goes).

The runner drives either through the same four calls, without knowing the tool:

    profiler = make_profiler("memray", run_dir, leaks=True, workers=1)   # or None for "none"
    command, env = profiler.wrap(command, env)    # before the app starts
    profiler.attach(app_pid)                      # once the app is ready
    ...load...
    profiler.detach()                             # stops py-spy (it writes its files); idempotent
    ...stop the app (SIGTERM; memray writes its capture as the app exits)...
    profile = profiler.finalize()                 # renders files, writes profile/profile.json

Everything lands in `<run_dir>/profile/` (see docs/run-dir.md). `finalize()` never raises:
whatever is missing is named in the "error" field of profile.json.

One module per tool: pyspy.py (two recorders: speedscope JSON and py-spy's flamegraph
SVG), speedscope.py (the hottest functions, read from the speedscope JSON), memray.py
(the capture, memray's flamegraph, the stats).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from lab.processes import die_with_parent
from lab.profilers._common import short_path
from lab.profilers.memray import MemrayProfiler, memray_sites
from lab.profilers.pyspy import PySpyProfiler, cleanup
from lab.profilers.speedscope import pyspy_top

__all__ = [
    "PROFILERS",
    "MemrayProfiler",
    "Profiler",
    "PySpyProfiler",
    "cleanup",
    "die_with_parent",
    "make_profiler",
    "memray_sites",
    "pyspy_top",
    "short_path",
]

#: Valid values of `lab run --profile`, "none" included.
PROFILERS: tuple[str, ...] = ("none", "py-spy", "memray")


@runtime_checkable
class Profiler(Protocol):
    """What the runner needs from a profiler; see the module docstring for the call order."""

    name: str
    run_dir: Path

    def wrap(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """The app's command and environment, as they must be run to be profiled."""
        ...

    def attach(self, app_pid: int) -> None:
        """The app is ready: start watching it (py-spy) or nothing (memray)."""
        ...

    def detach(self) -> None:
        """Stop recording and flush; idempotent, safe if `attach` never ran."""
        ...

    def finalize(self) -> dict[str, Any]:
        """After the app exited: render, write profile/profile.json, return it. Never raises."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def make_profiler(
    name: str,
    run_dir: Path,
    *,
    leaks: bool = False,
    workers: int = 1,
    rate: int = 100,
    aggregate: bool = True,
) -> Profiler | None:
    """The profiler called `name` (one of PROFILERS), or None for "none".

    leaks: memray shows what is still allocated at exit instead of the peak.
    workers: how many app processes (gunicorn workers) the run uses.
    rate: py-spy samples per second. aggregate: memray's small --aggregate capture
    (a full one grew ~18 MB/s raw under test load and renders slowly; needed only for
    `memray stats`' own histogram or `memray flamegraph --temporal`).
    """
    if name == "none":
        return None
    if name == "py-spy":
        return PySpyProfiler(run_dir, rate=rate)
    if name == "memray":
        return MemrayProfiler(run_dir, leaks=leaks, workers=workers, aggregate=aggregate)
    raise ValueError(f"unknown profiler {name!r}; valid: {', '.join(PROFILERS)}")
