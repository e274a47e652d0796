"""`lab compare RUN_A RUN_B`: before/after, with what is beyond noise."""

from __future__ import annotations

import time
from pathlib import Path

from lab.errors import LabError

__all__ = ["run"]


def run(before: Path, after: Path, out: Path | None = None) -> Path:
    from reports import ReportError, compare

    for run_dir in (before, after):
        if not (run_dir / "meta.json").is_file():
            raise LabError(f"{run_dir} is not a run dir (no meta.json); pass folders under runs/")
    if out is None:
        out = before.parent / f"compare-{time.strftime('%Y%m%d-%H%M%S')}-{before.name}"
    out.mkdir(parents=True, exist_ok=True)
    try:
        compare(before, after, out)
    except ReportError as exc:
        raise LabError(str(exc)) from None
    return out
