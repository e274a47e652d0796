"""heavy-json: a 50 MB export built in memory vs streamed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration]


def test_heavy_json_streaming_keeps_memory_flat(
    tmp_path: Path, lab_home: Path, seeded_db: str
) -> None:
    faulty, fixed = prove(
        "heavy-json", tmp_path, {"LAB_HOME": str(lab_home)},
        duration="20s", users=1, rows=2000,
    )  # fmt: skip
    assert faulty["rss_growth_mb"] > 4 * fixed["rss_growth_mb"]
    assert faulty["error_rate"] == 0 and fixed["error_rate"] == 0
    # Time to last byte of the same 50 MB: streamed NDJSON with orjson is faster.
    assert faulty["p50_ms"] > fixed["p50_ms"]
