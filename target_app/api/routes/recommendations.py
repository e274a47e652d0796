"""Recommendations from a (simulated) model server: the blocking-call seam."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from faults.blocking_call import BlockingModelClient
from target_app.api.deps import FaultsDep

__all__ = ["router"]

router = APIRouter(prefix="/recommendations", tags=["recommendations"])


@router.get("/{user_id}")
async def recommendations(user_id: int, faults: FaultsDep) -> dict[str, Any]:
    client: BlockingModelClient = faults.pick("blocking-call")
    return {"user_id": user_id, "product_ids": await client.recommend(user_id)}
