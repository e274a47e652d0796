"""Find the scenarios and hand the app the right implementation of a seam.

Discovery walks this package: every public module that defines `SCENARIO` is
a scenario. There is no hand-kept list.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from faults._contract import Scenario, Variant
from faults._toggles import ToggleState, ToggleStore, entry_variant

Seam = TypeVar("Seam")
Params = TypeVar("Params", bound=BaseModel)

__all__ = [
    "FaultRuntime",
    "InvalidParams",
    "UnknownScenario",
    "all_scenarios",
    "get",
    "validate_params",
]


class UnknownScenario(LookupError):
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.valid = sorted(s.slug for s in all_scenarios())
        super().__init__(f"unknown scenario '{slug}'; valid scenarios: {', '.join(self.valid)}")


class InvalidParams(ValueError):
    def __init__(self, scenario: Scenario[Any, Any], errors: list[str]) -> None:
        self.slug = scenario.slug
        self.errors = errors
        schema = scenario.params.model_json_schema().get("properties", {})
        self.valid = {name: _describe_field(spec) for name, spec in schema.items()}
        accepted = "; ".join(f"{k}: {v}" for k, v in self.valid.items()) or "none"
        super().__init__(
            f"bad parameters for '{scenario.slug}': {'; '.join(errors)}. Accepted: {accepted}"
        )


def _describe_field(spec: dict[str, Any]) -> str:
    bits = [spec.get("type", "any")]
    for key, word in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">")):
        if key in spec:
            bits.append(f"{word} {spec[key]}")
    if "enum" in spec:
        bits.append("one of " + ", ".join(map(str, spec["enum"])))
    if "default" in spec:
        bits.append(f"default {spec['default']}")
    return " ".join(str(b) for b in bits)


@cache
def _discover() -> dict[str, Scenario[Any, Any]]:
    import faults

    found: dict[str, Scenario[Any, Any]] = {}
    for info in pkgutil.iter_modules(faults.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"faults.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if not isinstance(scenario, Scenario):
            continue
        if scenario.slug in found:
            raise RuntimeError(f"two scenario modules declare the slug '{scenario.slug}'")
        found[scenario.slug] = scenario
    return dict(sorted(found.items()))


def all_scenarios() -> list[Scenario[Any, Any]]:
    return list(_discover().values())


def get(slug: str) -> Scenario[Any, Any]:
    try:
        return _discover()[slug]
    except KeyError:
        raise UnknownScenario(slug) from None


def validate_params(scenario: Scenario[Any, Params], params: Mapping[str, Any] | None) -> Params:
    try:
        return scenario.params.model_validate(dict(params or {}))
    except ValidationError as exc:
        errors = [
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise InvalidParams(scenario, errors) from None


class FaultRuntime:
    """One per app process: reads the toggles and keeps each built implementation.

    The app factory makes it and keeps it on `app.state.seams`; routes reach it
    through the `SeamsDep` dependency and ask for a seam with
    `seams.pick(<module>.SCENARIO)`, typed as the seam's interface.

    With `seams=False` (the benchmark's "instrumentation off" baseline, and
    production) the toggle store is never read and every seam is the fixed variant.

    `pick` runs on every request. The store hands back the same state dict
    until the toggle file changes, so a seam's last pick is kept with the dict
    it was made from and reused while that dict is current: one lookup and an
    identity check. Only after a change are the params compared, and a seam
    whose own entry did not change keeps its built object (a leak stays leaked
    when another fault is switched).
    """

    def __init__(self, store: ToggleStore | None, seams: bool = True) -> None:
        self.store = store
        self.seams = seams
        self._built: dict[tuple[str, Variant, str], object] = {}
        self._last_pick: dict[str, tuple[ToggleState, object]] = {}
        self._lock = threading.Lock()

    def _state(self) -> ToggleState:
        if not self.seams or self.store is None:
            return _NOTHING_ACTIVE
        return self.store.active()

    def variant(self, slug: str) -> tuple[Variant, dict[str, Any]]:
        entry = self._state().get(slug)
        if entry is None:
            return "fixed", {}
        return entry_variant(entry), entry.get("params", {})

    def pick(self, scenario: Scenario[Seam, Any]) -> Seam:
        """The implementation of `scenario`'s seam that is on right now."""
        slug = scenario.slug
        state = self._state()
        last = self._last_pick.get(slug)
        if last is not None and last[0] is state:
            return cast(Seam, last[1])
        entry = state.get(slug)
        variant: Variant = "fixed" if entry is None else entry_variant(entry)
        raw_params: dict[str, Any] = {} if entry is None else entry.get("params", {})
        key = (slug, variant, repr(sorted(raw_params.items())))
        with self._lock:
            built = self._built.get(key)
            if built is None:
                if get(slug) is not scenario:
                    # A seam the registry does not know could never be toggled.
                    raise UnknownScenario(slug)
                # Params were validated when the toggle was written; fall back
                # to defaults rather than crash a request on a hand-edited file.
                try:
                    params = validate_params(scenario, raw_params)
                except InvalidParams:
                    params = scenario.params()
                built = scenario.build(variant, params)
                self._built[key] = built
            self._last_pick[slug] = (state, built)
        return cast(Seam, built)


_NOTHING_ACTIVE: ToggleState = {}
