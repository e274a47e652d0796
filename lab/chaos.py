"""A scenario's network conditions, applied to the lab's Toxiproxy and taken off again.

Used by every `lab run` of a network scenario and by `lab chaos` (the same
conditions by hand, e.g. while exploring `lab serve` with curl or Grafana).
Taking them off is `POST /reset`: every proxy enabled, every toxic removed,
whoever added them, so that a run killed before its clean-up cannot leave a
toxic behind for the next one (`lab up` resets too).

An intermittent toxic (`Toxic.every_s`) is switched on and off by a thread of
this process for as long as the conditions are applied; `clear_toxics` stops it
before the reset, so no window opens after it. `lab chaos` has no process that
stays, so there it is held on until `lab chaos --reset`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import faults
from lab.errors import LabError

__all__ = ["Intermittent", "apply_toxics", "clear_toxics"]

log = logging.getLogger("lab.chaos")

_running: list[Intermittent] = []


def _install(toxic: faults.Toxic, name: str | None = None) -> None:
    from lab.services import toxiproxy

    if toxic.type == "down":
        toxiproxy.set_enabled(toxic.link, False)
    else:
        toxiproxy.add_toxic(
            toxic.link, toxic.type, dict(toxic.attributes), toxic.stream, toxic.toxicity, name
        )


def _uninstall(toxic: faults.Toxic, name: str) -> None:
    from lab.services import toxiproxy

    if toxic.type == "down":
        toxiproxy.set_enabled(toxic.link, True)
    else:
        toxiproxy.remove_toxic(toxic.link, name)


class Intermittent(threading.Thread):
    """One intermittent toxic: healthy for `every_s - for_s`, then on for `for_s`, again
    and again until `stop()`."""

    def __init__(self, toxic: faults.Toxic) -> None:
        super().__init__(name=f"toxic {toxic.link} {toxic.type}", daemon=True)
        assert toxic.every_s is not None and toxic.for_s is not None
        self.toxic = toxic
        self.name_in_proxy = f"{toxic.type}_{toxic.stream}_intermittent"
        self._stopping = threading.Event()

    def run(self) -> None:
        toxic = self.toxic
        assert toxic.every_s is not None and toxic.for_s is not None
        while not self._stopping.wait(toxic.every_s - toxic.for_s):
            try:
                _install(toxic, self.name_in_proxy)
            except LabError as exc:  # Toxiproxy gone: the run's own checks will say so
                log.warning("could not open a %s window: %s", self.name, exc)
                continue
            self._stopping.wait(toxic.for_s)
            try:
                _uninstall(toxic, self.name_in_proxy)
            except LabError as exc:
                log.warning("could not close a %s window: %s", self.name, exc)

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=10)


def apply_toxics(
    scenario: faults.Scenario[Any, Any], intermittent: bool = True
) -> list[dict[str, Any]]:
    """Reset, then install the scenario's toxics: each intermittent one switched on and
    off by a thread of this process, or (`intermittent=False`) held on. Returns what
    was installed."""
    clear_toxics()
    for toxic in scenario.toxics:
        if toxic.every_s is None or not intermittent:
            _install(toxic)
        else:
            flapping = Intermittent(toxic)
            _running.append(flapping)
            flapping.start()
    return [t.as_dict() for t in scenario.toxics]


def clear_toxics() -> None:
    """Every intermittent toxic stopped, then every toxic removed and every proxy up."""
    from lab.services import toxiproxy

    while _running:
        _running.pop().stop()
    toxiproxy.reset()
