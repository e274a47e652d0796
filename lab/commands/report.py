"""`lab report RUN`: rebuild a run's report from its run dir alone."""

from __future__ import annotations

from pathlib import Path

from lab.errors import LabError

__all__ = ["run"]


def run(run_dir: Path) -> Path:
    from reports import ReportError, build_report

    if not (run_dir / "meta.json").is_file():
        raise LabError(f"{run_dir} is not a run dir (no meta.json); pass a folder under runs/")
    try:
        build_report(run_dir)
    except ReportError as exc:  # e.g. a run dir of a format this lab does not read
        raise LabError(str(exc)) from None
    return run_dir
