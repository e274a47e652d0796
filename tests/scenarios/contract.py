"""The scenario contract, as a test: faulty shows the symptom, fixed does not.

Each scenario's test file calls `prove(slug, ...)`; adding a scenario touches
only its module in faults/ and its own test file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.runner import RunOptions, RunResult, run


def run_variant(slug: str, fixed: bool, out: Path, **load: Any) -> RunResult:
    options = RunOptions(slug=slug, fixed=fixed, out=out, **load)
    result = run(options)
    assert result.status == "completed", f"{slug} {options.variant}: {result.error}"
    return result


def prove(slug: str, out: Path, **load: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    faulty = run_variant(slug, False, out, **load).summary
    fixed = run_variant(slug, True, out, **load).summary
    f_sym, x_sym = faulty["symptom"], fixed["symptom"]
    assert f_sym["present"] is True, f"faulty {slug} did not show its symptom: {f_sym}"
    assert x_sym["present"] is False, f"fixed {slug} still shows the symptom: {x_sym}"
    return faulty, fixed
