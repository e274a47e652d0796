"""Ctrl-C in the middle of `lab run`: no orphan, toggles reset, partial report kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def _run_dir(out: Path) -> Path | None:
    dirs = [d for d in out.iterdir() if (d / "meta.json").exists()] if out.exists() else []
    return dirs[0] if dirs else None


def _sigint(disposition: signal.Handlers) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGINT, disposition)

    return preexec


@pytest.mark.parametrize(
    ("sig", "sigint_at_start"),
    [
        (signal.SIGINT, signal.SIG_DFL),
        (signal.SIGTERM, signal.SIG_DFL),
        # As `lab run ... &` from a script starts it: the shell has it ignore SIGINT,
        # which its children must not inherit (Locust stops on the lab's SIGINT).
        (signal.SIGTERM, signal.SIG_IGN),
    ],
    ids=["ctrl-c", "sigterm", "sigterm-started-in-background"],
)
def test_interrupted_run_cleans_up_and_keeps_a_partial_report(
    tmp_path: Path,
    lab_home: Path,
    seeded_db: str,
    sig: signal.Signals,
    sigint_at_start: signal.Handlers,
) -> None:
    out = tmp_path / "runs"
    lab = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "run", "memory-leak", "--duration", "60s",
         "--users", "10", "--rows", "2000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LAB_HOME": str(lab_home)},
        preexec_fn=_sigint(sigint_at_start),  # noqa: PLW1509 - only a sigaction
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        run_dir = None
        while time.monotonic() < deadline:
            run_dir = _run_dir(out)
            children = psutil.Process(lab.pid).children(recursive=True)
            history = run_dir / "locust_stats_history.csv" if run_dir else None
            names = " ".join(" ".join(c.cmdline()) for c in children)
            if history and history.exists() and history.stat().st_size > 500 and "locust" in names:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the run never got under load")
        assert run_dir is not None
        state_file = Path(json.loads((run_dir / "meta.json").read_text())["app"]["state_file"])
        assert "memory-leak" in state_file.read_text()  # the fault is on mid-run

        signalled = time.monotonic()
        lab.send_signal(sig)
        stdout, stderr = lab.communicate(timeout=90)
        took = time.monotonic() - signalled
    finally:
        if lab.poll() is None:
            lab.kill()

    assert lab.returncode == 130, stderr
    assert stdout.strip().splitlines()[-1] == str(run_dir)  # where the output went, last
    time.sleep(0.5)
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"orphans: {[c.cmdline() for c in survivors]}"
    assert not state_file.exists() or "memory-leak" not in state_file.read_text()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["requests"] and summary["requests"] > 0  # what was measured is kept
    assert (run_dir / "report.html").exists()
    # Locust heard its SIGINT: it wrote its own report and did not wait for SIGKILL.
    assert (run_dir / "locust.html").exists()
    assert took < 14, f"{took:.1f} s from the signal to the exit"
    assert meta["format"] == 1
    assert meta["load_started_at"] and meta["load_ended_at"] and meta["ended_at"]
    assert "cleanup_errors" not in meta, meta.get("cleanup_errors")
