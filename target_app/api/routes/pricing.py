"""Price bands per category, for the shop's "shop by price" filter (the performance-testing seam).

The bands are computed from the whole catalogue and kept in the worker for a few
seconds; how the cache is rebuilt when they expire is the seam (`PriceBandCache`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from faults import performance_testing
from target_app.api.deps import SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.db import Database

__all__ = ["router"]

router = APIRouter(prefix="/pricing", tags=["pricing"], responses=responses(422, 500))


@router.get("/bands", responses=responses((404, "no such category"), DATABASE_DOWN))
async def price_bands(
    request: Request,
    response: Response,
    seams: SeamsDep,
    # products.category is a VARCHAR(60) (target_app/models.py).
    category: Annotated[str | None, Query(min_length=1, max_length=60)] = None,
) -> dict[str, Any]:
    """Each category's product count, stock, price bands and units sold; or one category's.

    `Age` says how many seconds ago the bands were computed (RFC 9111): a cached
    answer may be up to the cache's max age old, and one rebuild more.
    """
    cache = seams.pick(performance_testing.SCENARIO)
    database: Database = request.app.state.db
    snapshot = await cache.current(database)
    response.headers["Age"] = str(int(snapshot.age_seconds()))
    if category is None:
        return {"categories": dict(snapshot.bands)}
    band = snapshot.bands.get(category)
    if band is None:
        raise HTTPException(404, f"no category {category!r}")
    return {"categories": {category: dict(band)}}
