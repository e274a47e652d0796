"""Reports of a run dir: summary.json, plots, report.md/html, and before/after comparisons.

Reads only the run dir (see docs/run-dir.md); never imports the app, and of
`faults` only the symptom predicate (`faults.symptom`), never the catalogue.
The summary's metrics are declared once, in reports/metrics.py.
"""

from __future__ import annotations

from .compare import compare, compare_runs
from .errors import ReportError, UnusableRunDir
from .report import build_report
from .summary import summarize

__all__ = ["ReportError", "UnusableRunDir", "build_report", "compare", "compare_runs", "summarize"]
