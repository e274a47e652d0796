"""The numbers of one run (`summary.json`), computed from the run dir alone.

Which numbers, in which order, computed by which step: reports/metrics.py.
How the file is written and read back: reports/formats.py (SummaryFile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .evidence import Evidence, load_evidence
from .formats import SummaryFile, read_meta
from .metrics import ROUTE_METRICS, STEPS, SUMMARY_FIELDS

__all__ = [
    "SUMMARY_FIELDS",
    "SummaryFile",
    "load_or_build_summary",
    "summarize",
    "summarize_evidence",
]


ROUTE_FIELDS = [metric.name for metric in ROUTE_METRICS]


def summarize_evidence(ev: Evidence) -> dict[str, Any]:
    """The summary dict of loaded evidence: every field of SUMMARY_FIELDS, in order."""
    out: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS)
    notes = list(ev.notes)
    for step in STEPS:
        step(ev, out, notes)
    # Each route's numbers in the registry's order too, whichever step filled which.
    if out.get("routes"):
        out["routes"] = {
            name: {metric: numbers.get(metric) for metric in ROUTE_FIELDS}
            for name, numbers in out["routes"].items()
        }
    return out


def summarize(run_dir: Path) -> dict[str, Any]:
    """Compute the summary of a run dir. Never raises because an evidence file is missing
    (UnusableRunDir when meta.json is)."""
    return summarize_evidence(load_evidence(Path(run_dir)))


def load_or_build_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run dir when it is in this code's format; else computed (and
    written, if possible) from the run dir."""
    read_meta(run_dir)  # a run dir in a format this code does not read has no summary to trust
    return SummaryFile(run_dir).load(lambda: summarize(Path(run_dir)))
