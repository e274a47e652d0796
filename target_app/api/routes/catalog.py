"""Catalogue statistics: an aggregate worth caching, in Redis."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from faults import no_cache, redis_timeout
from target_app.api.deps import RedisDep, SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.db import Database
from target_app.models import OrderItem, Product

__all__ = ["router"]

router = APIRouter(prefix="/catalog", tags=["catalog"], responses=responses(500, DATABASE_DOWN))


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


@router.get("/stats", responses=responses((503, "no Redis configured (REDIS_URL)")))
async def catalog_stats(request: Request, redis: RedisDep, seams: SeamsDep) -> Response:
    """Per-category counts, prices and stock; cache-aside in Redis (the redis-timeout seam)."""
    cache = seams.pick(redis_timeout.SCENARIO)
    database: Database = request.app.state.db
    body = await cache.get_or_compute(
        redis, "catalog:stats:v1", lambda: run_in_threadpool(_stats, database)
    )
    return Response(body, media_type="application/json")


def _bestsellers(database: Database) -> bytes:
    """Units sold per product, then a scoring pass in Python: ~tens of ms of work."""
    with database.sessions() as session:
        rows = session.execute(
            select(OrderItem.product_id, func.sum(OrderItem.quantity))
            .group_by(OrderItem.product_id)
            .order_by(func.sum(OrderItem.quantity).desc())
            .limit(500)
        ).all()
    scored = []
    for product_id, units in rows:
        score = 0.0
        for day in range(1, 200):  # a decaying popularity score, deliberately naive
            score += units / (1 + day * 0.05) ** 1.5
        scored.append({"product_id": product_id, "units": int(units), "score": round(score, 3)})
    scored.sort(key=lambda item: -item["score"])
    return orjson.dumps(scored[:50])


@router.get("/bestsellers")
async def bestsellers(request: Request, seams: SeamsDep) -> Response:
    """The top 50 products by decayed sales (the no-cache seam)."""
    cache = seams.pick(no_cache.SCENARIO)
    database: Database = request.app.state.db
    body = await cache.get(
        request.app.state.redis, lambda: run_in_threadpool(_bestsellers, database)
    )
    return Response(body, media_type="application/json")
