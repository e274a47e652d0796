"""Shipping quotes: CPU-heavy, the cpu-bound seam."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from faults import cpu_bound
from target_app.api.deps import SeamsDep

__all__ = ["router"]

router = APIRouter(prefix="/quotes", tags=["quotes"])


@router.get("/{product_id}")
def quote_shipping(
    product_id: int, seams: SeamsDep, zone: Annotated[int, Query(ge=1, le=10)] = 1
) -> dict[str, Any]:
    quotes = seams.pick(cpu_bound.SCENARIO)
    return {"product_id": product_id, "zone": zone, "cents": quotes.quote(product_id, zone)}
