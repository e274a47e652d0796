"""Recommendations from a (simulated) model server: the blocking-call seam."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from faults import blocking_call
from target_app.api.deps import SeamsDep

__all__ = ["router"]

router = APIRouter(prefix="/recommendations", tags=["recommendations"])


@router.get("/{user_id}")
async def recommendations(user_id: int, seams: SeamsDep) -> dict[str, Any]:
    client = seams.pick(blocking_call.SCENARIO)
    return {"user_id": user_id, "product_ids": await client.recommend(user_id)}
