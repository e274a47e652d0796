"""`lab dashboard snapshot RUN`: the overview dashboard of a run, as one PNG.

The work is in lab/dashboard.py, which the runner uses too (the runner never
imports a command); its names are re-exported here for the callers of old.
"""

from __future__ import annotations

from pathlib import Path

from lab.dashboard import (
    DASHBOARDS_DIR,
    OVERVIEW,
    RULES_DIR,
    PanelQuery,
    RuleQuery,
    annotation_queries,
    default_prometheus_url,
    panel_queries,
    rule_queries,
    snapshot,
    substitute,
    template_defaults,
)

__all__ = [
    "DASHBOARDS_DIR",
    "OVERVIEW",
    "RULES_DIR",
    "PanelQuery",
    "RuleQuery",
    "annotation_queries",
    "default_prometheus_url",
    "panel_queries",
    "rule_queries",
    "run",
    "snapshot",
    "substitute",
    "template_defaults",
]


def run(run_dir: Path, prometheus_url: str | None = None, out: Path | None = None) -> Path:
    """The PNG of the run's overview dashboard, from `prometheus_url` or the lab's."""
    return snapshot(run_dir, prometheus_url or default_prometheus_url(), out)
