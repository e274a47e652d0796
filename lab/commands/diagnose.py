"""`lab diagnose RUN`: name the root cause of a run from its evidence alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from lab.errors import LabError

__all__ = ["run", "run_eval"]


def run(run_dir: Path, as_json: bool) -> tuple[str, Path | None]:
    """The diagnosis as text (or JSON) and where diagnosis.json was written (None
    when the run dir is not writable: the diagnosis is still printed)."""
    from reports import ReportError
    from reports.diagnosis import DiagnosisFile, diagnose
    from reports.diagnosis.render import diagnosis_text

    if not (run_dir / "meta.json").is_file():
        raise LabError(f"{run_dir} is not a run dir (no meta.json); pass a folder under runs/")
    try:
        found = diagnose(run_dir)
    except ReportError as exc:  # a run dir of a format this lab does not read
        raise LabError(str(exc)) from None
    try:
        written: Path | None = DiagnosisFile(run_dir).write(found)
    except OSError:
        written = None
    if as_json:
        return json.dumps(found.as_dict(), indent=2), written
    return diagnosis_text(found), written


def run_eval(roots: Sequence[Path], out: Path, console: Console) -> Path:
    """Diagnose every completed run dir under the roots, score it against what ran,
    and write eval.json/eval.md into a new folder under `out`; returns eval.md."""
    from reports.diagnosis.evaluate import evaluate, run_dirs, write_eval

    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:
        raise LabError(f"no such folder: {', '.join(missing)}; pass folders that hold run dirs")
    dirs = run_dirs(roots)
    if not dirs:
        raise LabError("no completed run dir under " + ", ".join(map(str, roots)))
    console.print(f"diagnosing {len(dirs)} run dirs blind...")
    result = evaluate(dirs)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    table = write_eval(result, out / stamp)
    overall = result["overall"]
    console.print(
        f"AC@1 {overall['ac1']:.2f}, AC@3 {overall['ac3']:.2f} over {result['runs']} runs"
    )
    return table
