"""Products: the shop's busiest routes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from sqlalchemy import select

from faults import bandwidth_limit, memory_leak, offset_pagination, slicer, slow_query
from faults.memory_leak import CACHE_NAME
from target_app import metrics
from target_app.api.deps import DbSession, SeamsDep, SettingsDep, UpstreamDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.api.params import ProductId, ProductsAfter
from target_app.clients.upstream import UpstreamError
from target_app.cursors import BadCursor, Cursors
from target_app.models import Product
from target_app.settings import Settings

__all__ = ["router"]

router = APIRouter(prefix="/products", tags=["products"], responses=responses(422, 500))

_RATES = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79")}
Currency = Literal["USD", "EUR", "GBP"]


def _summary(product: Any, rate: Decimal) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "price": str((product.price * rate).quantize(Decimal("0.01"))),
        "in_stock": product.stock > 0,
    }


@router.get("", responses=responses(DATABASE_DOWN))
def list_products(
    session: DbSession,
    seams: SeamsDep,
    category: str | None = None,
    after_id: ProductsAfter = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """One page of products, keyset-paginated by id (pass `next_after_id` back).

    Which columns it fetches is the slicer seam (`ListQuery`).
    """
    columns = seams.pick(slicer.SCENARIO)
    query = columns.query().where(Product.id > after_id).order_by(Product.id).limit(limit)
    if category:
        query = query.where(Product.category == category)
    result = session.execute(query)
    rows = result.scalars() if len(result.keys()) == 1 else result
    items = [_summary(p, Decimal(1)) for p in rows]
    return {"items": items, "next_after_id": items[-1]["id"] if items else None}


def _cursors(settings: Settings) -> Cursors:
    return Cursors(settings.cursor_secret.get_secret_value().encode())


@router.get(
    "/pages", responses=responses((400, "the cursor is not one this API issued"), DATABASE_DOWN)
)
def product_pages(
    session: DbSession,
    seams: SeamsDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """A page of the catalogue: by page number or by cursor (the offset-pagination seam)."""
    pager = seams.pick(offset_pagination.SCENARIO)
    try:
        return pager.page(session, _cursors(settings), page, cursor)
    except BadCursor as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/pages/bookmark")
def page_bookmark(settings: SettingsDep, after_id: ProductsAfter) -> dict[str, str]:
    """A cursor that resumes after a product the client has seen ("continue where I left")."""
    return {"cursor": _cursors(settings).encode(after_id)}


@router.get("/search", responses=responses(DATABASE_DOWN))
def search_products(
    session: DbSession, seams: SeamsDep, name: Annotated[str, Query(min_length=1, max_length=200)]
) -> dict[str, Any]:
    """Products by exact name (the slow-query scenario: the schema decides its cost)."""
    lookup = seams.pick(slow_query.SCENARIO)
    return {"items": lookup.find(session, name)}


@router.get("/{product_id}", responses=responses((404, "no such product"), DATABASE_DOWN))
def product_page(
    product_id: ProductId,
    request: Request,
    session: DbSession,
    seams: SeamsDep,
    currency: Currency = "USD",
    x_session_id: Annotated[str, Header(max_length=64)] = "anonymous",
) -> Response:
    """The personalised product page, rendered once per (product, session, currency).

    Its cache is the memory-leak seam (`PageCache`).
    """
    cache = seams.pick(memory_leak.SCENARIO)
    key = (product_id, x_session_id, currency)
    page = cache.get(key)
    instrumented = request.app.state.settings.lab_instrumentation
    if instrumented:
        metrics.CACHE_REQUESTS.labels(CACHE_NAME, "hit" if page else "miss").inc()
    if page is None:
        product = session.get(Product, product_id)
        if product is None:
            raise HTTPException(404, f"no product {product_id}")
        rate = _RATES[currency]
        related = session.scalars(
            select(Product)
            .where(Product.category == product.category, Product.id != product_id)
            .order_by(Product.id)
            .limit(cache.related)
        )
        body = _summary(product, rate) | {
            "description": product.description,
            "currency": currency,
            "personalised_for": x_session_id,
            "related": [_summary(p, rate) for p in related],
        }
        page = orjson.dumps(body)
        cache.put(key, page)
        if instrumented:
            metrics.CACHE_ENTRIES.labels(CACHE_NAME).set(len(cache))
    return Response(page, media_type="application/json")


@router.get(
    "/{product_id}/availability",
    responses=responses(
        (404, "the supplier does not list the product"),
        (502, "the supplier's API failed"),
        (503, "no upstream API configured (UPSTREAM_URL)"),
    ),
)
async def product_availability(
    product_id: ProductId, seams: SeamsDep, upstream: UpstreamDep
) -> dict[str, Any]:
    """Stock at the supplier, fetched per request (the bandwidth-limit seam)."""
    fetcher = seams.pick(bandwidth_limit.SCENARIO)
    sku = f"SKU-{product_id:08d}"
    try:
        item = await fetcher.availability(upstream, sku)
    except UpstreamError as exc:
        raise HTTPException(502, f"supplier unavailable: {exc}") from None
    if item is None:
        raise HTTPException(404, f"the supplier does not list {sku}")
    return {"product_id": product_id, **item}
