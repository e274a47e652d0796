"""Profilers for a run: py-spy (where the CPU goes) and memray (where the memory goes).

The runner drives either through the same four calls, without knowing the tool:

    profiler = make_profiler("memray", run_dir, leaks=True, workers=1)   # or None for "none"
    command, env = profiler.wrap(command, env)    # before the app starts
    profiler.attach(app_pid)                      # once the app is ready
    ...load...
    profiler.detach()                             # in a finally: stops py-spy, idempotent
    ...stop the app (SIGTERM)...
    profile = profiler.finalize()                 # renders files, writes profile/profile.json

Everything lands in `<run_dir>/profile/` (see docs/run-dir.md). `finalize()` never raises:
whatever is missing is named in the "error" field of profile.json.

Facts this module relies on (checked with py-spy 0.4.3, memray 1.20.0, uvicorn 0.54.0,
gunicorn 27.0.1):

- uvicorn re-raises a caught SIGTERM with the default handler once it has shut down, and
  gunicorn's UvicornWorker resets SIGTERM to SIG_DFL; so the app dies *by the signal* and
  memray's tracker never closes its capture (an `--aggregate` file stays at 0 bytes, a full
  one is left uncompressed without its trailer). memray therefore runs the app through a
  small shim (`_MEMRAY_SHIM`) that turns that final SIGTERM into `SystemExit(0)`.
- `memray run --aggregate` keeps the capture small (5 s of load: 2.6 MB instead of 92 MB
  raw) and `memray flamegraph [--leaks]` reads it, but `memray stats` refuses it
  ("Can't compute statistics using a pre-aggregated capture file"); for aggregated
  captures the stats files are computed here with memray's own reader.
- With `--follow-fork`, every gunicorn worker writes its own `memray.bin.<pid>`.
  uvicorn's own `--workers` *spawns* its children, which memray cannot follow.
- py-spy writes its file on SIGINT, and also on its own when the target exits.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from lab.processes import die_with_parent

__all__ = [
    "PROFILERS",
    "MemrayProfiler",
    "Profiler",
    "PySpyProfiler",
    "cleanup",
    "make_profiler",
    "memray_sites",
    "pyspy_top",
    "render_flamegraph_svg",
    "short_path",
]

#: Valid values of `lab run --profile`, "none" included.
PROFILERS: tuple[str, ...] = ("none", "py-spy", "memray")

PROFILE_DIR = "profile"
TOP_N = 10
_MB = 1_000_000  # memray prints decimal MB; keep the same unit so numbers match its reports

# --------------------------------------------------------------------------- children


# py-spy recorders still running, so that `cleanup()` (also run at exit) can stop them.
_LIVE: set[subprocess.Popen[bytes]] = set()


def _stop_child(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGINT (py-spy writes its file on it), wait, then SIGKILL. Never raises."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    _LIVE.discard(proc)


def cleanup() -> None:
    """Stop every profiler child this process started and has not stopped yet."""
    for proc in list(_LIVE):
        _stop_child(proc, timeout=5.0)


atexit.register(cleanup)


def _tool(name: str) -> str:
    """The venv's copy of a console script (the lab may run without the venv activated)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _rel(run_dir: Path, path: Path) -> str:
    return path.relative_to(run_dir).as_posix()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def short_path(file: str) -> str:
    """A file name a reader can place: relative to the project, a package, or the stdlib."""
    if not file or file.startswith("<"):
        return file
    path = Path(file)
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):  # first: the venv may be in the project
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            return "/".join(parts[i + 1 :])
    with contextlib.suppress(ValueError, OSError):
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    with contextlib.suppress(ValueError, OSError):
        return path.resolve().relative_to(_STDLIB).as_posix()
    return path.as_posix()


# --------------------------------------------------------------------------- protocol


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


class _Base:
    name = ""
    tool_label = ""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.profile_dir = self.run_dir / PROFILE_DIR
        self.command: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        return None

    def _file(self, name: str) -> Path:
        return self.profile_dir / name

    def _write_profile(
        self,
        files: dict[str, Path],
        top_title: str,
        top: list[dict[str, Any]],
        errors: list[str],
        **extra: Any,
    ) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "tool": self.name,
            "files": {
                key: _rel(self.run_dir, path)
                for key, path in files.items()
                if path.exists() and path.stat().st_size > 0
            },
            "top_title": top_title,
            "top": top,
            "command": self.command,
            "error": "; ".join(errors) if errors else None,
            **extra,
        }
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.profile_dir / "profile.json", profile)
        return profile


def _run_tool(args: Sequence[str], timeout: float = 600.0) -> tuple[bool, str]:
    """Run a rendering command; (ok, what went wrong). Never raises."""
    try:
        done = subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            preexec_fn=die_with_parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{' '.join(args[:4])}: {exc}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:]
        return False, f"{' '.join(args[:4])} exited {done.returncode}: {' '.join(tail)}"
    return True, ""


# --------------------------------------------------------------------------- py-spy

# Leaf frames that mean "this thread is parked, waiting": a sample ending in one of them
# says nothing about what is hot, and there are many of them (event loop in epoll, idle
# threadpool workers). py-spy drops most idle threads itself (no --idle), but not those
# it catches waking up or re-taking the GIL, nor uvloop's C loop waiting in epoll (its
# deepest Python frame is asyncio's Runner.run). Matched on (path suffix, bare name).
_IDLE_LEAVES: frozenset[tuple[str, str]] = frozenset(
    {
        ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"),
        ("threading.py", "join"),
        ("queue.py", "get"),
        ("selectors.py", "select"),
        ("asyncio/base_events.py", "_run_once"),
        ("asyncio/base_events.py", "run_forever"),
        ("asyncio/base_events.py", "run_until_complete"),
        ("asyncio/runners.py", "run"),
        ("uvloop/__init__.py", "run"),
        ("uvicorn/_compat.py", "asyncio_run"),
        ("concurrent/futures/thread.py", "_worker"),
        ("gunicorn/arbiter.py", "sleep"),
        ("gunicorn/arbiter.py", "run"),
    }
)


def _bare(function: str) -> str:
    """py-spy names methods `Class.method`; the idle table uses the bare name."""
    return function.rsplit(".", 1)[-1]


def _is_idle(frame: dict[str, Any]) -> bool:
    file = str(frame.get("file") or "").replace("\\", "/")
    name = _bare(str(frame.get("name") or ""))
    return any(file.endswith(suffix) and name == fn for suffix, fn in _IDLE_LEAVES)


def _is_pseudo(frame: dict[str, Any]) -> bool:
    """py-spy's `process PID:"cmd"` frames (with --subprocesses): no code, no file."""
    return not frame.get("file") and str(frame.get("name", "")).startswith("process ")


def _speedscope_stacks(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Frames and one root-to-leaf stack per sample, over all threads and processes."""
    frames: list[dict[str, Any]] = data["shared"]["frames"]
    stacks: list[list[int]] = []
    for prof in data.get("profiles", []):
        if prof.get("type") == "sampled":
            # py-spy writes one sample per stack (weights are the sampling interval).
            stacks.extend(list(s) for s in prof.get("samples", []))
    return frames, stacks


def pyspy_top(data: dict[str, Any], n: int = TOP_N) -> tuple[list[dict[str, Any]], int, int]:
    """(rows, busy samples, idle samples) from a py-spy speedscope document.

    Rows are functions ranked by *self* share (the sample's leaf is in them: they burn the
    CPU themselves, C calls they make included), with `total`, the *inclusive* share (they
    are anywhere on the stack). Self answers "which function is hot"; ranking by total
    would put the framework's middleware chain first, at ~100%. Shares are of the busy
    samples: samples whose leaf is an idle wait are dropped first.
    """
    frames, stacks = _speedscope_stacks(data)
    self_n: collections.Counter[tuple[str, str]] = collections.Counter()
    total_n: collections.Counter[tuple[str, str]] = collections.Counter()
    lines: dict[tuple[str, str], collections.Counter[int]] = collections.defaultdict(
        collections.Counter
    )
    busy = idle = 0
    for stack in stacks:
        real = [i for i in stack if not _is_pseudo(frames[i])]
        if not real:
            continue
        leaf = frames[real[-1]]
        if _is_idle(leaf):
            idle += 1
            continue
        busy += 1
        leaf_key = (str(leaf["name"]), str(leaf.get("file") or ""))
        self_n[leaf_key] += 1
        lines[leaf_key][int(leaf.get("line") or 0)] += 1
        seen: set[tuple[str, str]] = set()
        for i in real:
            key = (str(frames[i]["name"]), str(frames[i].get("file") or ""))
            if key not in seen:  # recursion counts once per sample
                seen.add(key)
                total_n[key] += 1
    rows = []
    for key, count in self_n.most_common(n):
        name, file = key
        line = lines[key].most_common(1)[0][0]  # the hottest line of the function
        rows.append(
            {
                "function": name,
                "location": f"{short_path(file)}:{line}",
                "value": round(count / busy, 4),
                "unit": "share",
                "total": round(total_n[key] / busy, 4),
                "samples": count,
            }
        )
    return rows, busy, idle


def render_flamegraph_svg(data: dict[str, Any], out: Path, title: str = "") -> None:
    """An icicle chart (root on top) of the busy samples of a speedscope document, as SVG.

    Width is the share of busy samples; frames are labelled where the label fits.
    Frames under 0.1% wide are not drawn, which keeps the SVG small on long runs.
    """
    from matplotlib import rc_context
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure  # no pyplot: no global backend, thread-safe
    from matplotlib.patches import Rectangle

    frames, stacks = _speedscope_stacks(data)
    # Tree of children keyed by frame label; node = [count, children].
    root: list[Any] = [0, {}]
    for stack in stacks:
        real = [i for i in stack if not _is_pseudo(frames[i])]
        if not real or _is_idle(frames[real[-1]]):
            continue
        root[0] += 1
        node = root
        for i in stack:
            frame = frames[i]
            if _is_pseudo(frame):
                label = str(frame["name"]).split(":", 1)[0]  # "process 123"
            else:
                label = f"{frame['name']} ({short_path(str(frame.get('file') or ''))})"
            child = node[1].setdefault(label, [0, {}])
            child[0] += 1
            node = child
    total = root[0]
    width_in = 16.0
    rects: list[tuple[float, int, float, str]] = []  # x, depth, width, label
    min_width = 0.001

    def walk(node: list[Any], x: float, depth: int) -> None:
        for label, child in sorted(node[1].items()):
            w = child[0] / total
            if w >= min_width:
                rects.append((x, depth, w, label))
                walk(child, x, depth + 1)
            x += w

    if total:
        rects.append((0.0, 0, 1.0, f"all ({total} samples)"))
        walk(root, 0.0, 1)
    depth = max((d for _, d, _, _ in rects), default=0) + 1
    height_in = max(2.5, 0.2 * depth + 1.0)
    with rc_context({"svg.fonttype": "none", "font.size": 7}):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.6 / height_in))
        patches, colors = [], []
        for x, d, w, label in rects:
            patches.append(Rectangle((x, d), w, 0.95))
            # Stable warm colour per function, like the classic flame graph palette.
            h = hashlib.md5(label.encode()).digest()
            colors.append((0.85 + h[0] / 255 * 0.15, 0.35 + h[1] / 255 * 0.45, h[2] / 255 * 0.25))
        ax.add_collection(PatchCollection(patches, facecolors=colors, edgecolors="white",
                                          linewidths=0.3))  # fmt: skip
        char_w = 7 * 0.6 / 72 / (width_in * 0.98)  # one character, in axis units
        for x, d, w, label in rects:
            fits = int(w / char_w) - 1
            if fits >= 4:
                text = label if len(label) <= fits else label[: fits - 1] + "…"
                ax.text(x + char_w / 2, d + 0.5, text, va="center", ha="left", clip_on=True)
        ax.set_xlim(0, 1)
        ax.set_ylim(depth, 0)  # icicle: root on top
        ax.axis("off")
        fig.suptitle(title or "py-spy (no samples)", fontsize=9)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="svg")


class PySpyProfiler(_Base):
    """Samples the running app (and its worker processes) with `py-spy record --pid`."""

    name = "py-spy"

    def __init__(self, run_dir: Path, *, rate: int = 100, stop_timeout: float = 30.0) -> None:
        super().__init__(run_dir)
        self.rate = rate
        self.stop_timeout = stop_timeout
        self.speedscope = self._file("pyspy.speedscope.json")
        self.svg = self._file("pyspy-flamegraph.svg")
        self.log = self._file("pyspy.log")
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._stopped = 0.0

    def wrap(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        return list(command), dict(env)  # py-spy attaches from outside

    def attach(self, app_pid: int) -> None:
        if self._proc is not None:
            raise RuntimeError("py-spy is already attached")
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.command = [
            _tool("py-spy"), "record", "--pid", str(app_pid),
            "--subprocesses",   # gunicorn: the master's workers too
            "--nonblocking",    # don't pause the app at every sample: keeps latency honest
            "--format", "speedscope", "-o", str(self.speedscope), "--rate", str(self.rate),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal must not reach py-spy before the
                # lab decides; the lab sends SIGINT itself in detach().
                start_new_session=True,
                # Safe with threads: die_with_parent only calls prctl (libc preloaded).
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        _LIVE.add(self._proc)
        self._started = time.monotonic()

    def detach(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None or self._proc in _LIVE:
            _stop_child(self._proc, self.stop_timeout)
            self._stopped = self._stopped or time.monotonic()

    def finalize(self) -> dict[str, Any]:
        errors: list[str] = []
        top: list[dict[str, Any]] = []
        extra: dict[str, Any] = {"rate": self.rate}
        try:
            self.detach()  # the runner should have; harmless if it did
            if self._proc is None:
                errors.append("py-spy never attached to the app: no samples")
            elif not self.speedscope.exists() or self.speedscope.stat().st_size == 0:
                errors.append(
                    f"py-spy wrote no {_rel(self.run_dir, self.speedscope)} "
                    f"(exit code {self._proc.returncode}; {self._log_tail()})"
                )
            else:
                data = json.loads(self.speedscope.read_text())
                top, busy, idle = pyspy_top(data)
                extra.update(samples=busy, idle_samples=idle)
                if busy == 0:
                    errors.append("py-spy recorded no busy samples (was there any load?)")
                secs = (self._stopped or time.monotonic()) - self._started
                render_flamegraph_svg(
                    data, self.svg,
                    f"py-spy, {busy} busy samples ({idle} idle dropped) at {self.rate} Hz over "
                    f"~{secs:.0f} s; width = share of busy samples",
                )  # fmt: skip
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


# --------------------------------------------------------------------------- memray

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


class MemrayProfiler(_Base):
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
                errors.append(f"memray wrote no {_rel(self.run_dir, self.capture)} "
                              "(did the app start under memray?)")  # fmt: skip
            for path in empty:
                errors.append(f"{_rel(self.run_dir, path)} is empty: that process did not "
                              "exit cleanly (killed?), so memray never wrote it")  # fmt: skip
            if readable:
                top, summary = memray_sites(readable, self.leaks)
                extra["peak_memory_mb"] = round(
                    max(c["peak_memory_bytes"] for c in summary["captures"]) / _MB, 3
                )
                primary = self._primary(readable, summary)
                extra["flamegraph_capture"] = _rel(self.run_dir, primary)
                ok, why = _run_tool(
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
            ok, why = _run_tool(
                [sys.executable, "-m", "memray", "stats", "--json", "-n", str(TOP_N), "-f",
                 "-o", str(self.stats_json), str(primary)],
                self.render_timeout,
            )  # fmt: skip
            return errors + ([] if ok else [why])
        # `memray stats` refuses aggregated captures: the same kind of summary from the reader.
        view = "still allocated at exit" if self.leaks else "at the high-water mark"
        doc = {
            "source": "lab.profilers (memray stats cannot read --aggregate captures)",
            "view": view,
            **summary,
            "top_sites": top,
        }
        _write_json(self.stats_json, doc)
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


# --------------------------------------------------------------------------- factory


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
