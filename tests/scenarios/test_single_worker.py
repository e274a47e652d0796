"""single-worker: one uvicorn process vs gunicorn with a uvicorn worker per core."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]


def test_one_worker_keeps_one_core_busy_and_workers_per_core_use_them_all(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core: one worker per core is one worker, nothing to tell apart")
    faulty, fixed = prove(
        "single-worker", tmp_path, {"LAB_HOME": str(lab_home)},
        duration="15s", users=32, rows=2000,
    )  # fmt: skip
    apps = [json.loads((tmp_path / s["run_id"] / "meta.json").read_text())["app"]
            for s in (faulty, fixed)]  # fmt: skip
    assert (apps[0]["server"], apps[0]["workers"]) == ("uvicorn", 1)
    assert (apps[1]["server"], apps[1]["workers"]) == ("gunicorn", cores)
    assert faulty["error_rate"] == 0 and fixed["error_rate"] == 0
    # The seed's question: the same CPU-heavy load, more throughput from the same box.
    assert fixed["rps"] > 1.2 * faulty["rps"], (faulty["rps"], fixed["rps"])
