"""`lab serve` stopped the way a user stops it: no app process left, toggles reset.

SIGTERM (`kill <lab>`) used to kill the CLI alone and leave its uvicorn serving
with PPID 1. The CLI is started as a real process in its own session; Ctrl-C
is a SIGINT to its process group, as a terminal sends it (the app's processes
are in sessions of their own, so only the lab gets it, and stops them itself).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from lab.processes import free_port

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 30.0  # gunicorn's graceful_timeout is 10 s; uvicorn stops in well under 1 s


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _dump_stacks(pids: list[int], out: Path) -> None:
    """py-spy's dump of each process's Python stacks, appended to `out` (best effort:
    the lab CLI and the app, whichever of them is stuck)."""
    from lab.profilers._common import tool

    with contextlib.suppress(OSError, subprocess.SubprocessError), out.open("a") as f:
        for pid in pids:
            f.write(f"\n--- py-spy dump of pid {pid} ---\n")
            f.flush()
            subprocess.run(
                [tool("py-spy"), "dump", "--pid", str(pid)], stdout=f, stderr=f, timeout=30,
                check=False,
            )  # fmt: skip


def _default_sigint() -> None:
    # A test run started in the background (`&`, CI) ignores SIGINT, and a child
    # inherits that: give the CLI the terminal's default, so that Ctrl-C is real.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("sig", "workers"),
    [(signal.SIGTERM, 1), (signal.SIGTERM, 2), (signal.SIGINT, 1)],
    ids=["sigterm-uvicorn", "sigterm-gunicorn-x2", "ctrl-c-uvicorn"],
)
def test_a_signal_to_lab_serve_stops_the_app_and_resets_toggles(
    tmp_path: Path, lab_home: Path, seeded_db: str, sig: signal.Signals, workers: int
) -> None:
    port = free_port()
    output = (tmp_path / "serve.out").open("w")
    lab = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "serve", "memory-leak", "--port", str(port),
         "--rows", "2000", "--workers", str(workers)],
        # Files, not pipes: the app writes its log to the CLI's streams, and an unread
        # pipe would block it.
        stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        env={**os.environ, "LAB_HOME": str(lab_home)},
        start_new_session=True, preexec_fn=_default_sigint,  # noqa: PLW1509
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 90
        while not _answers(port):
            assert lab.poll() is None, (tmp_path / "serve.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "lab serve never answered /healthz"
            time.sleep(0.3)
        children = psutil.Process(lab.pid).children(recursive=True)
        # uvicorn; or gunicorn's master and its workers
        assert len(children) >= (1 if workers == 1 else 1 + workers), children
        state_file = lab_home / "state" / f"serve-{port}.json"
        assert "memory-leak" in state_file.read_text()  # the fault is on while serving

        started = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(lab.pid, signal.SIGINT)
        else:
            lab.send_signal(sig)
        try:
            lab.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            # What the lab was doing when it did not stop: its output, and its stack.
            _dump_stacks([lab.pid, *(c.pid for c in children)], tmp_path / "serve.out")
            raise AssertionError(
                f"lab serve still running {STOP_WITHIN_S:.0f} s after {sig.name}:\n"
                + (tmp_path / "serve.out").read_text()[-5000:]
            ) from None
        took = time.monotonic() - started
    finally:
        output.close()
        if lab.poll() is None:
            lab.kill()
        for child in children:  # never leave the app behind, even when the test fails
            if child.is_running():
                child.kill()

    log = (tmp_path / "serve.out").read_text()
    assert lab.returncode == 130, log[-3000:]
    assert took < STOP_WITHIN_S
    time.sleep(0.3)
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"orphans: {[c.cmdline() for c in survivors]}"
    assert not _answers(port)
    assert not state_file.exists() or "memory-leak" not in state_file.read_text()
