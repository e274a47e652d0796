"""`lab chaos SLUG` / `lab chaos --reset`: a scenario's network conditions, by hand."""

from __future__ import annotations

from typing import Any

import faults
from lab.chaos import apply_toxics, clear_toxics
from lab.errors import LabError

__all__ = ["run"]


def run(slug: str | None, reset: bool = False) -> list[dict[str, Any]]:
    if reset or slug is None:
        clear_toxics()
        return []
    try:
        scenario = faults.get(slug)
    except faults.UnknownScenario as exc:
        raise LabError(str(exc)) from None
    if not scenario.toxics:
        raise LabError(
            f"'{slug}' is a {scenario.kind} scenario with no network conditions; the network "
            f"scenarios are {', '.join(s.slug for s in faults.all_scenarios() if s.toxics)}"
        )
    # No process stays to switch an intermittent toxic: held on until --reset.
    return apply_toxics(scenario, intermittent=False)
