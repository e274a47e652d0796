"""memory-leak: RSS grows per request with the unbounded cache, not with the bounded one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scenarios.contract import assert_diagnosis_is_blind, diagnosis_of, prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]


def test_memory_leak_faulty_vs_fixed(tmp_path: Path, lab_home: Path, seeded_db: str) -> None:
    faulty, fixed = prove(
        "memory-leak", tmp_path, env={"LAB_HOME": str(lab_home)},
        duration="20s", users=30, rows=2000,
    )  # fmt: skip
    # The leak is per request: the faulty slope is many times the fixed one.
    assert faulty["rss_slope_mb_per_10k_requests"] > 3 * fixed["rss_slope_mb_per_10k_requests"]
    assert faulty["rss_end_mb"] > fixed["rss_end_mb"]
    assert faulty["error_rate"] == 0 and fixed["error_rate"] == 0

    # The diagnosis, blind to which variant ran, names the leak in the faulty run
    # and nothing in the fixed one; removing the ground truth changes nothing.
    faulty_run, fixed_run = tmp_path / faulty["run_id"], tmp_path / fixed["run_id"]
    assert diagnosis_of(faulty_run)["cause"] == "memory-leak"
    assert diagnosis_of(fixed_run)["verdict"] == "healthy"
    assert json.loads((faulty_run / "diagnosis.json").read_text())["cause"] == "memory-leak"
    assert "## Diagnosis" in (faulty_run / "report.md").read_text()
    assert_diagnosis_is_blind(faulty_run, tmp_path / "blind-faulty")
    assert_diagnosis_is_blind(fixed_run, tmp_path / "blind-fixed")
