"""Ctrl-C in the middle of `lab run`: no orphan, toggles reset, partial report kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def _run_dir(out: Path) -> Path | None:
    dirs = [d for d in out.iterdir() if (d / "meta.json").exists()] if out.exists() else []
    return dirs[0] if dirs else None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_cleans_up_and_keeps_a_partial_report(
    tmp_path: Path, lab_home: Path, seeded_db: str, sig: signal.Signals
) -> None:
    out = tmp_path / "runs"
    lab = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "run", "memory-leak", "--duration", "60s",
         "--users", "10", "--rows", "2000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LAB_HOME": str(lab_home)},
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

        lab.send_signal(sig)
        stdout, stderr = lab.communicate(timeout=90)
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
