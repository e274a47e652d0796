"""Shipping quotes: a cheapest-route search per quote, the cpu-bound seam."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Query

from faults import cpu_bound
from target_app.api.deps import SeamsDep
from target_app.api.errors import responses
from target_app.api.params import ProductId

__all__ = ["router"]


@contextlib.asynccontextmanager
async def _load_network(app: FastAPI) -> AsyncIterator[None]:
    """Load the carrier's lane network at start-up, as a shop loads its rate card: the
    first quote must not pay for it (a tenth of a second), whichever variant serves it."""
    await anyio.to_thread.run_sync(cpu_bound.carrier_network)
    yield


router = APIRouter(
    prefix="/quotes", tags=["quotes"], lifespan=_load_network, responses=responses(422, 500)
)


@router.get("/{product_id}")
def quote_shipping(
    product_id: ProductId,
    seams: SeamsDep,
    zone: Annotated[int, Query(ge=1, le=cpu_bound.ZONES)] = 1,
) -> dict[str, Any]:
    quotes = seams.pick(cpu_bound.SCENARIO)
    return {"product_id": product_id, "zone": zone, "cents": quotes.quote(product_id, zone)}
