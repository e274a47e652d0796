"""Catalogue statistics: an aggregate worth caching, in Redis."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from faults.redis_timeout import TrustingCache
from target_app.api.deps import FaultsDep, RedisDep
from target_app.db import Database
from target_app.models import Product

__all__ = ["router"]

router = APIRouter(prefix="/catalog", tags=["catalog"])


def _stats(database: Database) -> bytes:
    with database.sessions() as session:
        rows = session.execute(
            select(Product.category, func.count(), func.avg(Product.price), func.sum(Product.stock))
            .group_by(Product.category)
            .order_by(Product.category)
        ).all()
    return orjson.dumps(
        [
            {"category": c, "products": n, "avg_price": round(float(p), 2), "stock": int(s)}
            for c, n, p, s in rows
        ]
    )


@router.get("/stats")
async def catalog_stats(request: Request, redis: RedisDep, faults: FaultsDep) -> Response:
    """Per-category counts, prices and stock; cache-aside in Redis (the redis-timeout seam)."""
    cache: TrustingCache = faults.pick("redis-timeout")
    database: Database = request.app.state.db
    body = await cache.get_or_compute(
        redis, "catalog:stats:v1", lambda: run_in_threadpool(_stats, database)
    )
    return Response(body, media_type="application/json")
