"""memray: where the memory goes, recorded inside the app (`memray run`: it cannot attach).

Facts this module relies on (checked with memray 1.20.0, uvicorn 0.54.0, gunicorn 27.0.1):

- uvicorn re-raises a caught SIGTERM with the default handler once it has shut down, and
  gunicorn's UvicornWorker resets SIGTERM to SIG_DFL; so the app dies *by the signal* and
  memray's tracker never closes its capture (an `--aggregate` file stays at 0 bytes, a full
  one is left uncompressed without its trailer). memray therefore runs the app through a
  small shim (`_MEMRAY_SHIM`) that turns that final SIGTERM into `SystemExit(0)`: the
  runner must stop the app with SIGTERM and wait for it, and finalize only after that.
- `memray run --aggregate` keeps the capture small (5 s of load: 2.6 MB instead of 92 MB
  raw) and `memray flamegraph [--leaks]` reads it, but `memray stats` refuses it
  ("Can't compute statistics using a pre-aggregated capture file"); for aggregated
  captures the stats files are computed here with memray's own reader.
- With `--follow-fork`, every gunicorn worker writes its own `memray.bin.<pid>`.
  uvicorn's own `--workers` *spawns* its children, which memray cannot follow.
"""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lab.processes import die_with_parent
from lab.profilers._common import TOP_N, BaseProfiler, rel, run_tool, short_path, write_json

__all__ = ["MemrayProfiler", "memray_sites"]

_MB = 1_000_000  # memray prints decimal MB; keep the same unit so numbers match its reports

# Runs the app's module under `memray run -c`, so that the app's final SIGTERM ends in a
# normal interpreter exit and memray closes (writes) its capture. See the module docstring:
# uvicorn re-raises SIGTERM with SIG_DFL after its graceful shutdown (gunicorn's uvicorn
# worker too), which would kill the process before memray's tracker is closed. Exit code 0
# rather than 143: gunicorn logs a worker that exits non-zero as an ERROR, which would
# pollute app.log with a failure that is only the profiler's doing.
_MEMRAY_SHIM = """\
import runpy, signal, sys
def _lab_exit(signum, frame):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, _lab_exit)
_lab_raise_signal = signal.raise_signal
def _lab_reraise(signum):
    if signum == signal.SIGTERM and signal.getsignal(signum) in (signal.SIG_DFL, None):
        raise SystemExit(0)
    _lab_raise_signal(signum)
signal.raise_signal = _lab_reraise
_lab_module = sys.argv[1]
sys.argv = [_lab_module, *sys.argv[2:]]
runpy.run_module(_lab_module, run_name="__main__", alter_sys=True)
"""


def _site(frame: tuple[str, str, int]) -> tuple[str, str]:
    function, file, line = frame
    return function, f"{short_path(file)}:{line}"


def memray_sites(
    captures: Iterable[Path], leaks: bool, n: int = TOP_N
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Top allocation sites (innermost Python frame) summed over captures, and a summary.

    leaks: memory still allocated when the tracker stopped (at exit); otherwise the
    allocations alive at the high-water mark. Import machinery (`<frozen importlib...>`)
    is skipped: code objects of loaded modules live until exit but are never the leak.
    """
    import memray

    size: collections.Counter[tuple[str, str]] = collections.Counter()
    count: collections.Counter[tuple[str, str]] = collections.Counter()
    stacks: dict[tuple[str, str], list[str]] = {}
    summary: dict[str, Any] = {"captures": []}
    for path in captures:
        reader = memray.FileReader(str(path), report_progress=False)
        md = reader.metadata
        records = (
            reader.get_leaked_allocation_records(merge_threads=True)
            if leaks
            else reader.get_high_watermark_allocation_records(merge_threads=True)
        )
        kept = 0
        for rec in records:
            kept += rec.size
            trace = rec.stack_trace(max_stacks=6)
            if not trace:
                key = ("<no Python frame>", "?")
            elif trace[0][1].startswith("<frozen"):
                continue
            else:
                key = _site(trace[0])
            size[key] += rec.size
            count[key] += rec.n_allocations
            if trace and key not in stacks:
                stacks[key] = [f"{fn} ({loc})" for fn, loc in map(_site, trace)]
        summary["captures"].append(
            {
                "file": path.name,
                "pid": md.pid,
                "peak_memory_bytes": md.peak_memory,
                "total_allocations": md.total_allocations,
                ("leaked_bytes" if leaks else "high_water_mark_bytes"): kept,
                "python_allocator": md.python_allocator,
                "trace_python_allocators": md.trace_python_allocators,
                "file_format": md.file_format.name,
                "start_time": str(md.start_time),
                "end_time": str(md.end_time),
            }
        )
    rows = [
        {
            "function": function,
            "location": location,
            "value": round(size[(function, location)] / _MB, 3),
            "unit": "MB",
            "allocations": count[(function, location)],
            "stack": stacks.get((function, location), []),
        }
        for (function, location), _ in size.most_common(n)
    ]
    return rows, summary


class MemrayProfiler(BaseProfiler):
    """Runs the app under `memray run` (it must start the app: memray cannot attach)."""

    name = "memray"

    def __init__(
        self,
        run_dir: Path,
        *,
        leaks: bool = False,
        workers: int = 1,
        aggregate: bool = True,
        render_timeout: float = 600.0,
    ) -> None:
        super().__init__(run_dir)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers}")
        self.leaks = leaks
        self.workers = workers
        self.aggregate = aggregate
        self.render_timeout = render_timeout
        self.capture = self._file("memray.bin")
        self.flamegraph = self._file("memray-flamegraph.html")
        self.stats_txt = self._file("memray-stats.txt")
        self.stats_json = self._file("memray-stats.json")
        self.app_pid: int | None = None

    def wrap(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """`python [opts] -m MODULE args` -> `python [opts] -m memray run ... -c SHIM MODULE args`.

        Raises ValueError for a command memray cannot follow (not `-m`, uvicorn --workers).
        """
        if "-m" not in command[1:]:
            raise ValueError(
                "memray can only wrap a `python -m <module> ...` command, got: " + " ".join(command)
            )
        i = command.index("-m", 1)
        if i + 1 >= len(command):
            raise ValueError("memray: `-m` without a module in: " + " ".join(command))
        module, args = command[i + 1], command[i + 2 :]
        if module == "uvicorn" and self._uvicorn_workers(args) > 1:
            raise ValueError(
                "memray cannot profile `uvicorn --workers N`: uvicorn spawns its workers "
                "(not fork), so memray's --follow-fork never sees them. Use gunicorn with "
                "uvicorn workers (lab run --workers N) or a single uvicorn process."
            )
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.command = [
            *command[:i], "-m", "memray", "run",
            "-q",             # keep memray's banner out of app.log
            "-f",             # a re-used run dir: overwrite, don't fail
            "--follow-fork",  # gunicorn workers are forked: each writes memray.bin.<pid>
            *(["--aggregate"] if self.aggregate else []),
            "-o", str(self.capture),
            "-c", _MEMRAY_SHIM, module, *args,
        ]  # fmt: skip
        new_env = dict(env)
        if self.leaks:
            # pymalloc hands out memory from its own arenas, so a leaked small object is
            # charged to whichever allocation grew the arena: leaks view needs real malloc.
            # (--trace-python-allocators gives the same attribution; checked.)
            new_env["PYTHONMALLOC"] = "malloc"
        return self.command, new_env

    @staticmethod
    def _uvicorn_workers(args: list[str]) -> int:
        for j, arg in enumerate(args):
            value = None
            if arg == "--workers" and j + 1 < len(args):
                value = args[j + 1]
            elif arg.startswith("--workers="):
                value = arg.split("=", 1)[1]
            if value is not None:
                with contextlib.suppress(ValueError):
                    return int(value)
        return 1

    def attach(self, app_pid: int) -> None:
        self.app_pid = app_pid  # memray already runs inside the app

    def captures(self) -> list[Path]:
        """memray.bin (the process started) and memray.bin.<pid> (each forked worker)."""
        found = [self.capture] if self.capture.exists() else []
        children = [p for p in self.profile_dir.glob("memray.bin.*") if p.suffix[1:].isdigit()]
        return found + sorted(children, key=lambda p: int(p.suffix[1:]))

    def finalize(self) -> dict[str, Any]:
        errors: list[str] = []
        top: list[dict[str, Any]] = []
        files: dict[str, Path] = {"bin": self.capture}
        extra: dict[str, Any] = {
            "view": "leaks" if self.leaks else "peak",
            "aggregate": self.aggregate,
            "workers": self.workers,
        }
        try:
            captures = self.captures()
            for path in captures[1:]:
                files[f"bin_{path.suffix[1:]}"] = path
            empty = [p for p in captures if p.stat().st_size == 0]
            readable = [p for p in captures if p.stat().st_size > 0]
            if not captures:
                errors.append(f"memray wrote no {rel(self.run_dir, self.capture)} "
                              "(did the app start under memray?)")  # fmt: skip
            for path in empty:
                errors.append(f"{rel(self.run_dir, path)} is empty: that process did not "
                              "exit cleanly (killed?), so memray never wrote it")  # fmt: skip
            if readable:
                top, summary = memray_sites(readable, self.leaks)
                extra["peak_memory_mb"] = round(
                    max(c["peak_memory_bytes"] for c in summary["captures"]) / _MB, 3
                )
                primary = self._primary(readable, summary)
                extra["flamegraph_capture"] = rel(self.run_dir, primary)
                ok, why = run_tool(
                    [sys.executable, "-m", "memray", "flamegraph",
                     *(["--leaks"] if self.leaks else []),
                     "--no-web",  # assets inlined: the report opens offline, on another machine
                     "-f", "-o", str(self.flamegraph), str(primary)],
                    self.render_timeout,
                )  # fmt: skip
                if not ok:
                    errors.append(why)
                files["flamegraph"] = self.flamegraph
                errors += self._stats(primary, readable, summary, top)
                files |= {"stats_txt": self.stats_txt, "stats_json": self.stats_json}
        except Exception as exc:  # finalize never raises
            errors.append(f"memray profile: {type(exc).__name__}: {exc}")
        title = (
            "Allocation sites with the most memory still allocated at exit (MB)"
            if self.leaks
            else "Allocation sites holding the most memory at the high-water mark (MB)"
        )
        return self._write_profile(files, title, top, errors, **extra)

    def _primary(self, readable: list[Path], summary: dict[str, Any]) -> Path:
        """The capture to draw: the only one, or the worker that kept the most memory."""
        if len(readable) == 1:
            return readable[0]
        key = "leaked_bytes" if self.leaks else "high_water_mark_bytes"
        by_name = {c["file"]: c[key] for c in summary["captures"]}
        workers = [p for p in readable if p != self.capture] or readable
        return max(workers, key=lambda p: by_name.get(p.name, 0))

    def _stats(
        self, primary: Path, readable: list[Path], summary: dict[str, Any], top: list[Any]
    ) -> list[str]:
        import memray

        fmt = memray.FileReader(str(primary), report_progress=False).metadata.file_format
        if fmt != memray.FileFormat.AGGREGATED_ALLOCATIONS:
            # A full capture: memray's own statistics.
            errors = []
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "memray", "stats", "-n", str(TOP_N), str(primary)],
                    capture_output=True, timeout=self.render_timeout,
                    preexec_fn=die_with_parent, check=False,
                    env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
                )  # fmt: skip
                self.stats_txt.write_bytes(done.stdout)
                if done.returncode != 0:
                    errors.append(f"memray stats exited {done.returncode}")
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"memray stats: {exc}")
            ok, why = run_tool(
                [sys.executable, "-m", "memray", "stats", "--json", "-n", str(TOP_N), "-f",
                 "-o", str(self.stats_json), str(primary)],
                self.render_timeout,
            )  # fmt: skip
            return errors + ([] if ok else [why])
        # `memray stats` refuses aggregated captures: the same kind of summary from the reader.
        view = "still allocated at exit" if self.leaks else "at the high-water mark"
        doc = {
            "source": "lab.profilers.memray (memray stats cannot read --aggregate captures)",
            "view": view,
            **summary,
            "top_sites": top,
        }
        write_json(self.stats_json, doc)
        out = [f"memray summary ({'leaks' if self.leaks else 'peak'} view, aggregated capture)"]
        for c in summary["captures"]:
            held = c.get("leaked_bytes", c.get("high_water_mark_bytes", 0))
            out.append(
                f"  {c['file']} (pid {c['pid']}): peak {c['peak_memory_bytes'] / _MB:.3f} MB, "
                f"{c['total_allocations']} allocations, {held / _MB:.3f} MB {view}, "
                f"allocator {c['python_allocator']}"
            )
        out.append(f"\nTop allocation sites, MB {view} (all captures):")
        for row in top:
            out.append(f"  {row['value']:10.3f} MB  {row['allocations']:>9} allocs  "
                       f"{row['function']} at {row['location']}")  # fmt: skip
        self.stats_txt.write_text("\n".join(out) + "\n")
        return []
