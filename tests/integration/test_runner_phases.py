"""The runner's phases, in-process: what a failure undoes, in which order, and what it keeps."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

import lab.runner
import lab.undo
from lab.runner import RunOptions, run
from lab.sampler import Sampler

pytestmark = pytest.mark.integration


@pytest.fixture
def no_services(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's `lab up` must not change what these runs do (Prometheus, toxics).
    monkeypatch.setattr(lab.runner, "available_services", set)


def _meta(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "meta.json").read_text())
    return data


def _app_processes(port: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--port" in cmdline and str(port) in cmdline:
            found.append(proc)
    return found


@pytest.mark.timeout(120)
def test_an_app_that_cannot_start_fails_the_run_and_undoes_only_what_was_done(
    tmp_path: Path, lab_home: Path, seeded_db: str, no_services: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    crash = [sys.executable, "-c", "import sys; print('no app today'); sys.exit(3)"]
    monkeypatch.setattr(lab.runner, "app_command", lambda config: crash)
    steps: list[str] = []
    real = lab.undo.guarded

    def spy(step: str, errors: list[str], action: Callable[[], object]) -> bool:
        steps.append(step)
        return real(step, errors, action)

    monkeypatch.setattr(lab.undo, "guarded", spy)
    monkeypatch.setattr(lab.runner, "guarded", spy)

    result = run(RunOptions("memory-leak", duration_s=5, users=2, out=tmp_path, seed_rows=2000))

    assert result.status == "failed"
    assert result.error and "exited during start-up (code 3)" in result.error
    assert "no app today" in result.error  # the app's last lines, not a traceback
    # Only the toggles and the app were acquired: no Locust, sampler or profiler to stop.
    assert steps == ["stop app", "reset toggles", "build report"]
    meta = _meta(result.run_dir)
    assert meta["status"] == "failed" and meta["error"] == result.error
    assert meta["app"]["command"] == crash
    assert meta["load_started_at"] is None and meta["ended_at"]
    assert "cleanup_errors" not in meta
    assert not Path(meta["app"]["state_file"]).exists()  # toggles reset and removed
    assert (result.run_dir / "report.html").exists()  # a report of what there is
    assert json.loads((result.run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.timeout(180)
def test_a_failing_undo_step_is_recorded_and_the_others_run_in_order(
    tmp_path: Path, lab_home: Path, seeded_db: str, no_services: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    steps: list[str] = []
    real = lab.undo.guarded

    def spy(step: str, errors: list[str], action: Callable[[], object]) -> bool:
        steps.append(step)
        return real(step, errors, action)

    monkeypatch.setattr(lab.undo, "guarded", spy)
    monkeypatch.setattr(lab.runner, "guarded", spy)
    stop = Sampler.stop

    def stuck(self: Sampler) -> None:
        stop(self)
        raise RuntimeError("sampler stuck")

    monkeypatch.setattr(Sampler, "stop", stuck)

    result = run(
        RunOptions("memory-leak", duration_s=3, users=5, out=tmp_path, seed_rows=2000,
                   profile="py-spy")
    )  # fmt: skip

    assert result.status == "completed", result.error
    # Reverse order of acquisition: Locust before the app (it writes its CSVs), the
    # profiler detached before the app stops, toggles last; then what needs the app gone.
    assert steps == [
        "stop Locust", "stop sampler", "stop profiler", "stop app", "reset toggles",
        "finalize profile", "build report",
    ]  # fmt: skip
    meta = _meta(result.run_dir)
    assert meta["cleanup_errors"] == ["stop sampler: sampler stuck"]
    assert meta["status"] == "completed"
    assert meta["load_started_at"] < meta["load_ended_at"] < meta["ended_at"]
    port = meta["app"]["port"]
    assert _app_processes(port) == []  # the app was stopped all the same
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    assert not Path(meta["app"]["state_file"]).exists()
    profile = json.loads((result.run_dir / "profile" / "profile.json").read_text())
    assert profile["error"] is None, profile["error"]
    assert set(profile["files"]) == {"speedscope", "flamegraph", "log"}
    assert (result.run_dir / "locust.html").exists()
    assert result.summary["requests"] > 0
