"""Bulk exports (the heavy-json seam)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from faults.heavy_json import BufferedValidatedJson
from target_app.api.deps import FaultsDep

__all__ = ["router"]

router = APIRouter(prefix="/export", tags=["exports"])


@router.get("/orders", response_model=None)
def export_orders(request: Request, faults: FaultsDep) -> Response:
    renderer: BufferedValidatedJson = faults.pick("heavy-json")
    return renderer.render(request.headers.get("accept-encoding", ""))
