"""What the curve parts share (worker-sizing's workers, sse-logs' clients): the plot
written where the page links it, and bench.md's tables of a part."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.measurements import CurveMeasurement, curve_markdown

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["part_markdown", "save"]


def save(fig: Figure, path: Path) -> Path:
    """The figure as `path` (its directory made), closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def part_markdown(slug: str, part: dict[str, Any]) -> list[str]:
    """bench.md's tables of a curve part (the scenario's page shows the same), and its plot."""
    lines = curve_markdown(CurveMeasurement.from_dict(slug, part))
    return [*lines, "", f"Plot: {part['plot']}"] if part.get("plot") else lines
