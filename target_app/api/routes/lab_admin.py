"""`/_lab`: switch faults on and off at run time.

Mounted only when LAB_ADMIN_ENABLED=true, always behind the admin token, and
every write is refused when LAB_ENV=production. The state is written to the
shared toggle store, which every worker re-reads within a second.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Body, HTTPException, status

import faults
from target_app.api.deps import AdminDep, SeamsDep, SettingsDep, ToggleAllowedDep

__all__ = ["router"]

router = APIRouter(prefix="/_lab", tags=["lab"], include_in_schema=False)


def _scenario(slug: str) -> faults.Scenario[Any, Any]:
    try:
        return faults.get(slug)
    except faults.UnknownScenario as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            {"message": str(exc), "slug": exc.slug, "valid": exc.valid},
        ) from None


def _listing(seams: faults.FaultRuntime) -> dict[str, Any]:
    tuned = seams.store.active() if seams.store else {}
    active = {slug for slug, entry in tuned.items() if faults.entry_variant(entry) == "faulty"}
    return {
        "pid": os.getpid(),
        "faults": [
            scenario.describe()
            | {
                "active": scenario.slug in active,
                # A fixed variant's own params too, when a run tuned them.
                "params_in_effect": tuned.get(scenario.slug, {}).get("params"),
                "variant_here": seams.variant(scenario.slug)[0],
            }
            for scenario in faults.all_scenarios()
        ],
    }


@router.get("/faults")
def list_faults(_: AdminDep, seams: SeamsDep) -> dict[str, Any]:
    """Every scenario, whether it is on, and what this worker serves right now."""
    return _listing(seams)


@router.put("/faults/{slug}")
def enable_fault(
    slug: str,
    _: AdminDep,
    __: ToggleAllowedDep,
    seams: SeamsDep,
    params: dict[str, Any] | None = Body(default=None),  # noqa: B008
) -> dict[str, Any]:
    """Switch the faulty variant on, with parameters (JSON object; defaults if absent)."""
    scenario = _scenario(slug)
    if not scenario.toggled:
        # Its variants are how the app is started (e.g. how many workers) or deployed
        # (a release procedure): nothing a running process can switch.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            {"message": f"'{slug}' is a {scenario.kind} scenario: its variants are how the app "
                        f"is started or deployed, not a toggle; run `lab run {slug}` or "
                        f"`lab run {slug} --fixed`"},
        )  # fmt: skip
    try:
        valid = faults.validate_params(scenario, params)
    except faults.InvalidParams as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {"message": str(exc), "errors": exc.errors, "valid": exc.valid},
        ) from None
    assert seams.store is not None
    seams.store.enable(slug, valid.model_dump(mode="json"))
    return {"slug": slug, "active": True, "params": valid.model_dump(mode="json")}


@router.delete("/faults/{slug}")
def disable_fault(slug: str, _: AdminDep, __: ToggleAllowedDep, seams: SeamsDep) -> dict[str, Any]:
    """Back to the fixed variant."""
    _scenario(slug)
    assert seams.store is not None
    was_active = seams.store.disable(slug)
    return {"slug": slug, "active": False, "was_active": was_active}


@router.post("/reset")
def reset_faults(_: AdminDep, settings: SettingsDep, seams: SeamsDep) -> dict[str, Any]:
    """Every fault off. Allowed in production too: turning faults off is always safe."""
    assert seams.store is not None
    return {"reset": seams.store.reset(), "env": settings.lab_env}
