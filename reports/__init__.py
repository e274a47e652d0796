"""Reports of a run dir: summary.json, plots, report.md/html, and before/after comparisons.

Reads only the run dir (see docs/run-dir.md); never imports the app or `faults`.
"""

from __future__ import annotations

from .compare import compare, compare_runs
from .report import build_report
from .summary import summarize

__all__ = ["build_report", "compare", "compare_runs", "summarize"]
