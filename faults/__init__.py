"""The scenario catalogue: one module per incident, found without a list.

The app reaches a seam through its `FaultRuntime` (`app.state.seams`, the
`SeamsDep` dependency): `seams.pick(memory_leak.SCENARIO)` returns the
implementation that is on right now (faulty when toggled on, fixed otherwise),
typed as the seam's interface.

This package's own modules (contract, registry, toggles, symptom) are a leaf:
they import neither target_app nor reports.
"""

from faults._contract import Answer, Deployment, NoParams, Scenario, Toxic, Variant
from faults._registry import (
    FaultRuntime,
    InvalidParams,
    UnknownScenario,
    all_scenarios,
    get,
    validate_params,
)
from faults._toggles import ToggleStore, entry_variant
from faults.symptom import Symptom, SymptomResult

__all__ = [
    "Answer",
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
    "entry_variant",
    "get",
    "validate_params",
]
