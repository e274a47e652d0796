"""`lab report` on a folder it cannot read: one sentence and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args], cwd=REPO, capture_output=True, text=True,
        timeout=120, check=False, env={**os.environ, "COLUMNS": "300"},  # no wrapping
    )  # fmt: skip


def test_a_run_dir_of_a_newer_format_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text(json.dumps({"format": 99, "run_id": "x"}))
    done = _lab("report", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "format 99" in done.stderr
    assert "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1


def test_a_folder_without_meta_is_one_sentence(tmp_path: Path) -> None:
    done = _lab("report", str(tmp_path))
    assert done.returncode == 2
    assert "not a run dir" in done.stderr and "Traceback" not in done.stderr
