"""`lab eval` (`make eval`): run the seeded corpus (lab/corpus.py), diagnose each
run blind, score it.

Each planned run is a real `lab run` in its own process, into
`runs/eval/<time>/corpus/`; the scoring (reports/diagnosis/evaluate.py) then reads
each run dir blind and writes eval.md/eval.json next to the corpus. Ctrl-C stops
the run under way and scores what finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

import faults
from lab.corpus import PlannedRun, plan
from lab.errors import LabError

__all__ = ["run"]

REPO = Path(__file__).resolve().parents[2]


def _lab_run(planned: PlannedRun, corpus: Path, console: Console) -> Path | None:
    """One `lab run` in its own process; its run dir, or None when it did not finish."""
    args = [sys.executable, "-m", "lab.cli", *planned.args(corpus)]
    done = subprocess.run(
        args, cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    if done.returncode == 130:
        raise KeyboardInterrupt
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        console.print(f"  [yellow]did not complete[/] (exit {done.returncode}): {last}")
        return None
    return Path(done.stdout.strip().splitlines()[-1])


def run(seed: int, per_variant: int, only: Sequence[str], out: Path, console: Console) -> Path:
    """Run the planned corpus and score it; returns eval.md."""
    from reports.diagnosis.evaluate import evaluate, run_dirs, write_eval

    unknown = [slug for slug in only if slug not in {s.slug for s in faults.all_scenarios()}]
    if unknown:
        raise LabError(f"unknown scenario {', '.join(unknown)}; see `lab scenarios`")
    runs = plan(seed, per_variant, only)
    if not runs:
        raise LabError("no diagnosable scenario selected; pass --only with a fault or network slug")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = out / stamp
    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    total_s = sum(r.duration_s + 12 for r in runs)
    console.print(f"eval: {len(runs)} runs (seed {seed}), about {total_s / 60:.0f} min")
    started = time.monotonic()
    try:
        for i, planned in enumerate(runs, start=1):
            console.print(f"[{i}/{len(runs)}] {planned.describe()}")
            _lab_run(planned, corpus, console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: scoring the runs that finished")
    minutes = (time.monotonic() - started) / 60
    console.print(f"corpus done in {minutes:.1f} min; diagnosing blind...")
    dirs = run_dirs([corpus])
    if not dirs:
        raise LabError(f"no run completed under {corpus}; see each run's message above")
    result = evaluate(dirs)
    result["plan"] = {"seed": seed, "per_variant": per_variant, "only": list(only)}
    return write_eval(result, folder)
