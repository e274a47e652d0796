"""`lab eval` for real on one scenario: its planned runs run, are diagnosed blind and
scored into eval.md/eval.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_eval_runs_its_corpus_and_scores_it(lab_home: Path, seeded_db: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lab.cli", "eval", "--only", "memory-leak", "--per-variant", "1",
         "--out", str(tmp_path)],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = Path(done.stdout.strip().splitlines()[-1])
    result = json.loads((table.parent / "eval.json").read_text())
    assert result["runs"] == 2 and result["plan"]["only"] == ["memory-leak"]
    by_run = {row["variant"]: row for row in result["scored"]}
    assert by_run["faulty"]["expected"] == "memory-leak"
    assert by_run["fixed"]["expected"] == "healthy"
    # The corpus is real run dirs, each with its report and diagnosis.
    for row in result["scored"]:
        assert (Path(row["run"]) / "report.html").is_file()
        assert (Path(row["run"]) / "diagnosis.json").is_file()
    assert "| memory-leak | 1 |" in table.read_text()
