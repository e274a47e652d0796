"""lab/job_workers.py: the lab as the job workers' supervisor, with a stand-in command.

The real workers (Dramatiq on Redis) run in tests/scenarios/test_long_task_inline.py
and tests/integration/test_job_workers.py; here the command is a small Python
process that prints Dramatiq's ready line, so that start, restart and stop are
checked in a second.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import psutil
import pytest

from lab import job_workers
from lab.errors import LabError
from lab.job_workers import JobWorkers

pytestmark = pytest.mark.unit

READY = "import sys, time; print('Worker process is ready for action.', flush=True); "


def _command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_command_is_dramatiqs_cli_at_a_lower_priority() -> None:
    command = job_workers.worker_command()
    assert command[:3] == ["nice", "-n", str(job_workers.NICE)]
    assert command[4:7] == ["-m", "dramatiq", "target_app.worker:setup"]
    assert "--processes" in command and "--threads" in command


def test_a_worker_that_exits_is_replaced_and_stop_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        job_workers, "worker_command", lambda threads=1: _command(READY + "time.sleep(60)")
    )
    workers = JobWorkers(2, {}, tmp_path / "job-workers.log")
    workers.start(timeout=20)
    first = [c.pid for c in workers.children]
    assert workers.supervise() == 0  # both alive: nothing to do
    psutil.Process(first[0]).send_signal(signal.SIGKILL)
    psutil.Process(first[0]).wait(timeout=10)
    assert workers.supervise() == 1
    assert workers.restarts == 1
    pids = [c.pid for c in workers.children]
    assert first[0] not in pids and first[1] in pids and len(pids) == 2
    workers.stop()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_a_worker_that_dies_at_start_up_is_one_sentence_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        job_workers, "worker_command",
        lambda threads=1: _command("import sys; print('no REDIS_URL', flush=True); sys.exit(3)"),
    )  # fmt: skip
    workers = JobWorkers(1, {}, tmp_path / "job-workers.log")
    with pytest.raises(LabError, match=r"(?s)exited during start-up \(code 3\).*no REDIS_URL"):
        workers.start(timeout=20)
    workers.stop()
