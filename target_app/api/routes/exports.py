"""Bulk exports (the heavy-json seam)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from faults import heavy_json
from target_app.api.deps import SeamsDep

__all__ = ["router"]

router = APIRouter(prefix="/export", tags=["exports"])


@router.get("/orders", response_model=None)
def export_orders(request: Request, seams: SeamsDep) -> Response:
    renderer = seams.pick(heavy_json.SCENARIO)
    return renderer.render(request.headers.get("accept-encoding", ""))
