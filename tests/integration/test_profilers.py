"""lab.profilers against a real throwaway uvicorn/gunicorn app, the way the runner drives them.

Each test: make_profiler -> wrap -> start the app -> attach -> a few seconds of requests
-> detach -> SIGTERM the app -> finalize, then checks the files and the `top` rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.profilers import (
    PROFILERS,
    MemrayProfiler,
    PySpyProfiler,
    die_with_parent,
    make_profiler,
)

pytestmark = pytest.mark.integration

APP = """
import hashlib
from fastapi import FastAPI

_KEPT: list[bytearray] = []


def crunch_numbers_hot(n: int) -> str:
    digest = b"x"
    for _ in range(n):
        digest = hashlib.sha256(digest).digest()
    acc = 0
    for i in range(n * 5):
        acc += i * i % 7
    return digest.hex() + str(acc)


def hoard_bytes_leak(kb: int) -> int:
    _KEPT.append(bytearray(kb * 1024))
    return len(_KEPT)


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/cpu")
    def cpu() -> dict:
        return {"h": crunch_numbers_hot(20000)}

    @app.get("/leak")
    async def leak() -> dict:
        return {"n": hoard_bytes_leak(64)}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return app
"""


def _line_of(text: str) -> int:
    return next(i for i, line in enumerate(APP.splitlines(), 1) if text in line)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "throwaway_app.py").write_text(APP)
    return tmp_path


def _uvicorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", "throwaway_app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def _gunicorn(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "throwaway_app:create_app()",
    ]  # fmt: skip


@contextlib.contextmanager
def running_app(command: list[str], env: dict[str, str], cwd: Path, port: int) -> Iterator[int]:
    """Start like the runner does (own session), yield the pid, stop with SIGTERM."""
    log = (cwd / "app.log").open("ab")
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (cwd / "app.log").read_text()[-2000:]
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            assert time.monotonic() < deadline, "app not ready in 30 s"
            time.sleep(0.2)
        yield proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the session
        log.close()


def load(port: int, seconds: float, paths: tuple[str, ...]) -> int:
    """Requests from one thread per path for `seconds`; returns how many succeeded."""
    done = [0]

    def loop(path: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
                done[0] += 1

    threads = [threading.Thread(target=loop, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0]


def _check_profile(run_dir: Path, profile: dict, tool: str) -> dict:
    on_disk = json.loads((run_dir / "profile" / "profile.json").read_text())
    assert on_disk == json.loads(json.dumps(profile))
    assert on_disk["tool"] == tool
    assert on_disk["error"] is None, on_disk["error"]
    assert {"files", "top_title", "top", "command"} <= on_disk.keys()
    for rel in on_disk["files"].values():
        assert rel.startswith("profile/")
        assert (run_dir / rel).stat().st_size > 0, rel
    for row in on_disk["top"]:
        assert {"function", "location", "value", "unit"} <= row.keys()
    return on_disk


def test_make_profiler_names(tmp_path: Path) -> None:
    assert PROFILERS == ("none", "py-spy", "memray")
    assert make_profiler("none", tmp_path) is None
    assert isinstance(make_profiler("py-spy", tmp_path), PySpyProfiler)
    assert isinstance(make_profiler("memray", tmp_path, leaks=True), MemrayProfiler)
    with pytest.raises(ValueError, match=r"none, py-spy, memray"):
        make_profiler("perf", tmp_path)
    memray = make_profiler("memray", tmp_path, workers=2)
    assert memray is not None
    with pytest.raises(ValueError, match="spawns"):
        memray.wrap([*_uvicorn(1), "--workers", "2"], {})
    with pytest.raises(ValueError, match="-m <module>"):
        memray.wrap(["uvicorn", "app:app"], {})


def test_finalize_without_a_run_writes_an_error(tmp_path: Path) -> None:
    for name in ("py-spy", "memray"):
        run_dir = tmp_path / name
        profiler = make_profiler(name, run_dir)
        assert profiler is not None
        profiler.detach()  # never attached: must be a no-op
        profiler.detach()
        profile = profiler.finalize()
        assert profile["error"], profile
        assert profile["top"] == []
        assert json.loads((run_dir / "profile" / "profile.json").read_text())["error"]


@pytest.mark.timeout(60)
def test_pyspy_finds_the_cpu_hot_function(app_dir: Path) -> None:
    run_dir, port = app_dir / "run", _free_port()
    profiler = make_profiler("py-spy", run_dir, rate=100)
    assert profiler is not None
    command, env = profiler.wrap(_uvicorn(port), dict(os.environ))
    assert command == _uvicorn(port)
    with running_app(command, env, app_dir, port) as pid:
        try:
            profiler.attach(pid)
            assert load(port, 5, ("/cpu", "/cpu", "/leak")) > 20
        finally:
            profiler.detach()
            profiler.detach()  # idempotent
    profile = _check_profile(run_dir, profiler.finalize(), "py-spy")
    assert set(profile["files"]) == {"speedscope", "flamegraph", "log"}
    assert profile["command"][1:4] == ["record", "--pid", str(pid)]
    assert profile["samples"] > 50
    assert profile["top"][0]["function"] == "crunch_numbers_hot", profile["top"]
    hot = profile["top"][0]
    assert hot["unit"] == "share" and 0.3 < hot["value"] <= hot["total"] <= 1
    hot_lines = (_line_of("hashlib.sha256(digest)"), _line_of("acc += i * i"))
    assert hot["location"].endswith(tuple(f"throwaway_app.py:{n}" for n in hot_lines))
    # idle waits (event loop, threadpool) are dropped, not ranked
    assert not any(r["function"] in ("Condition.wait", "Runner.run") for r in profile["top"])
    svg = (run_dir / profile["files"]["flamegraph"]).read_text()
    assert svg.lstrip().startswith("<?xml") and "crunch_numbers_hot" in svg
    # py-spy's own flamegraph (inferno's), recorded alongside the speedscope file
    assert "github.com/jonhoo/inferno" in svg
    flamegraph = profile["flamegraph_command"]
    assert flamegraph[1:4] == ["record", "--pid", str(pid)]
    assert flamegraph[flamegraph.index("--format") + 1] == "flamegraph"
    assert profile["command"][profile["command"].index("--format") + 1] == "speedscope"


@pytest.mark.timeout(60)
def test_memray_leaks_view_names_the_leaky_site(app_dir: Path) -> None:
    run_dir, port = app_dir / "run", _free_port()
    profiler = make_profiler("memray", run_dir, leaks=True)
    assert profiler is not None
    command, env = profiler.wrap(_uvicorn(port), dict(os.environ))
    assert command[1:5] == ["-m", "memray", "run", "-q"] and "--aggregate" in command
    assert env["PYTHONMALLOC"] == "malloc"
    with running_app(command, env, app_dir, port) as pid:
        profiler.attach(pid)
        assert load(port, 4, ("/leak", "/leak", "/cpu")) > 20
        profiler.detach()
    profile = _check_profile(run_dir, profiler.finalize(), "memray")
    assert set(profile["files"]) == {"bin", "flamegraph", "stats_txt", "stats_json"}
    top = profile["top"][0]
    assert top["function"] == "hoard_bytes_leak", profile["top"]
    assert top["location"].endswith(f"throwaway_app.py:{_line_of('_KEPT.append')}")
    assert top["unit"] == "MB"
    assert top["value"] > 5  # 64 KB per /leak request
    html = (run_dir / "profile" / "memray-flamegraph.html").read_text()
    assert "hoard_bytes_leak" in html
    stats = json.loads((run_dir / "profile" / "memray-stats.json").read_text())
    assert stats["captures"][0]["python_allocator"] == "malloc"


@pytest.mark.timeout(60)
def test_memray_follows_gunicorn_workers(app_dir: Path) -> None:
    run_dir, port = app_dir / "run", _free_port()
    profiler = make_profiler("memray", run_dir, leaks=True, workers=2)
    assert profiler is not None
    command, env = profiler.wrap(_gunicorn(port, 2), dict(os.environ))
    with running_app(command, env, app_dir, port) as pid:
        profiler.attach(pid)
        assert load(port, 4, ("/leak", "/leak", "/leak")) > 20
    profile = _check_profile(run_dir, profiler.finalize(), "memray")
    workers = [k for k in profile["files"] if k.startswith("bin_")]
    assert len(workers) == 2, profile["files"]  # one capture per forked worker
    assert profile["top"][0]["function"] == "hoard_bytes_leak", profile["top"]
    # the workers exited cleanly: gunicorn logged no worker failure
    assert "exited with code" not in (app_dir / "app.log").read_text()
