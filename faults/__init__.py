"""The scenario catalogue: one module per incident, found without a list.

Use from the app:  `faults.pick("memory-leak")` returns the implementation of
that seam which is on right now (faulty when toggled on, fixed otherwise).
"""

from faults._contract import Deployment, NoParams, Scenario, Symptom, SymptomResult, Toxic, Variant
from faults._registry import (
    FaultRuntime,
    InvalidParams,
    UnknownScenario,
    all_scenarios,
    configure,
    get,
    runtime,
    validate_params,
)
from faults._toggles import ToggleStore

__all__ = [
    "Deployment",
    "FaultRuntime",
    "InvalidParams",
    "NoParams",
    "Scenario",
    "Symptom",
    "SymptomResult",
    "ToggleStore",
    "Toxic",
    "UnknownScenario",
    "Variant",
    "all_scenarios",
    "configure",
    "get",
    "pick",
    "runtime",
    "validate_params",
]


def pick(slug: str) -> object:
    return runtime().pick(slug)
