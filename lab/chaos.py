"""A scenario's network conditions, applied to the lab's Toxiproxy and taken off again.

Used by every `lab run` of a network scenario and by `lab chaos` (the same
conditions by hand, e.g. while exploring `lab serve` with curl or Grafana).
Taking them off is `POST /reset`: every proxy enabled, every toxic removed,
whoever added them, so that a run killed before its clean-up cannot leave a
toxic behind for the next one (`lab up` resets too).
"""

from __future__ import annotations

from typing import Any

import faults

__all__ = ["apply_toxics", "clear_toxics"]


def apply_toxics(scenario: faults.Scenario[Any, Any]) -> list[dict[str, Any]]:
    """Reset, then install the scenario's toxics. Returns what was installed."""
    from lab.services import toxiproxy

    toxiproxy.reset()
    for toxic in scenario.toxics:
        if toxic.type == "down":
            toxiproxy.set_enabled(toxic.link, False)
        else:
            toxiproxy.add_toxic(
                toxic.link, toxic.type, dict(toxic.attributes), toxic.stream, toxic.toxicity
            )
    return [t.as_dict() for t in scenario.toxics]


def clear_toxics() -> None:
    from lab.services import toxiproxy

    toxiproxy.reset()
