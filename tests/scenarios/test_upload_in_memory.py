"""upload-in-memory: 500 MB uploads read into memory vs streamed to disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]

UPLOAD_MB = 500  # the workload's default body


def test_streamed_upload_keeps_peak_rss_flat(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    faulty, fixed = prove(
        "upload-in-memory", tmp_path, {"LAB_HOME": str(lab_home)}, duration="20s", users=1
    )
    # The kernel's high-water mark: the faulty variant held the whole body at
    # least once; the streamed one never more than a block and uvicorn's buffer.
    assert faulty["peak_rss_growth_mb"] >= UPLOAD_MB
    assert fixed["peak_rss_growth_mb"] < 64
    for summary in (faulty, fixed):
        assert summary["requests"] >= 2 and summary["error_rate"] == 0, summary
        assert summary["unhandled_error_rate"] == 0, summary["responses_by_status"]
    # Each user overwrites one name and deletes it when it stops: the disk holds
    # at most one upload per user (one, if Locust's stop cut a PUT whose server
    # side finished after the DELETE).
    assert len([p for p in (lab_home / "uploads").rglob("*") if p.is_file()]) <= 1
