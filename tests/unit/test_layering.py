"""The shapes keep themselves honest: seams typed and registered, layers that do not leak.

These fail when a new scenario or route takes a shortcut the design rules out:
a route that names a variant's class, a scenario module the registry cannot
find, a seam declared without its interface, a workload that does not exist,
or a catalogue that cannot be listed without importing the app.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import faults
from loadtests.workloads import available as available_workloads

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _loaded_modules(prefix: str) -> list[ModuleType]:
    package = importlib.import_module(prefix)
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, f"{prefix}."):
        if ".migrations" in info.name:  # alembic scripts: not importable on their own
            continue
        found.append(importlib.import_module(info.name))
    return found


def _imported_in_fresh_interpreter(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_listing_and_validating_the_catalogue_never_imports_the_app() -> None:
    # What the lab's CLI does before any run: list, describe, validate parameters.
    modules = _imported_in_fresh_interpreter(
        "import faults\n"
        "for s in faults.all_scenarios():\n"
        "    faults.validate_params(s, {}); s.describe()\n"
        "from lab.commands.scenarios import catalogue; catalogue()"
    )
    leaked = sorted(m for m in modules if m.split(".")[0] in {"target_app", "reports"})
    assert leaked == [], f"listing the catalogue imported {leaked}"


def test_the_contract_is_a_leaf() -> None:
    modules = _imported_in_fresh_interpreter(
        "import faults, faults._contract, faults._registry, faults._toggles, faults.symptom"
    )
    scenario_modules = {s for s in modules if s.startswith("faults.") and s[7:8] != "_"}
    assert scenario_modules <= {"faults.symptom"}, scenario_modules
    assert not any(m.split(".")[0] in {"target_app", "reports", "lab"} for m in modules)


def test_reports_use_only_the_predicate_of_faults() -> None:
    # A run dir is rebuilt without the catalogue: on another machine, or after
    # the scenario changed.
    modules = _imported_in_fresh_interpreter("import reports, reports.compare, reports.summary")
    from_faults = {m for m in modules if m == "faults" or m.startswith("faults.")}
    assert from_faults <= {"faults", "faults._contract", "faults._registry", "faults._toggles",
                           "faults._signs", "faults.symptom"}, from_faults  # fmt: skip
    assert not any(m.split(".")[0] in {"target_app", "lab"} for m in modules)


def test_every_scenario_in_any_loaded_module_is_the_registered_one() -> None:
    # The app picks seams by their Scenario object; one the registry does not
    # hold (a module named `_x.py`, a second constant) could never be toggled.
    importlib.import_module("target_app.main")
    for module in [*_loaded_modules("faults"), *_loaded_modules("target_app")]:
        for name, value in vars(module).items():
            if isinstance(value, faults.Scenario):
                assert faults.get(value.slug) is value, f"{module.__name__}.{name} is unregistered"


def test_every_scenario_declares_its_seam_interface() -> None:
    for scenario in faults.all_scenarios():
        module = sys.modules[_module_of(scenario)]
        annotation = module.__annotations__.get("SCENARIO", "")
        assert str(annotation).startswith("Scenario["), (
            f"{module.__name__}: declare `SCENARIO: Scenario[Interface, Params] = Scenario(...)` "
            "so that mypy checks both variants against the seam"
        )


def _module_of(scenario: faults.Scenario[object, faults.NoParams]) -> str:
    """The module that declares a scenario: where its variants are defined."""
    return scenario.faulty.__module__


def test_no_route_names_a_variant() -> None:
    variants = {}
    for scenario in faults.all_scenarios():
        for variant in ("faulty", "fixed"):
            variants[id(getattr(scenario, variant))] = f"{scenario.slug} {variant}"
    for module in _loaded_modules("target_app"):
        for name, value in vars(module).items():
            assert id(value) not in variants, (
                f"{module.__name__} names {name}, the {variants[id(value)]} variant: "
                "reach the seam with seams.pick(<module>.SCENARIO) instead"
            )


def test_every_scenario_workload_exists() -> None:
    workloads = set(available_workloads())
    for scenario in faults.all_scenarios():
        assert scenario.workload in workloads, f"{scenario.slug}: no workload {scenario.workload}"


def test_every_seam_the_app_picks_is_registered() -> None:
    # Each `seams.pick(x.SCENARIO)` in the app's source names a module whose
    # SCENARIO the registry holds.
    registered = {s.faulty.__module__ for s in faults.all_scenarios()}
    sources = (REPO / "target_app").rglob("*.py")
    picked = {
        f"faults.{name}"
        for path in sources
        for name in re.findall(r"\.pick\((\w+)\.SCENARIO\)", path.read_text())
    }
    assert picked, "no seams.pick(...) found: did the seam API change?"
    assert picked <= registered, picked - registered
