"""Bulk exports (the heavy-json seam)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from faults import heavy_json
from target_app.api.deps import SeamsDep
from target_app.api.errors import responses

__all__ = ["router"]

router = APIRouter(prefix="/export", tags=["exports"], responses=responses(500))


@router.get("/orders", response_model=None)
def export_orders(seams: SeamsDep) -> Response:
    """Every order, as the heavy-json seam renders it (compressed where it compresses)."""
    renderer = seams.pick(heavy_json.SCENARIO)
    return renderer.render()
