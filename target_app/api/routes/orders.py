"""Orders: the shop's writes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from faults import n_plus_one, pool_exhaustion, upstream_flaky, upstream_slow
from target_app.api.deps import DbSession, SeamsDep, UpstreamDep
from target_app.clients.upstream import UpstreamError, UpstreamUnavailable
from target_app.db import Database
from target_app.models import Order, OrderItem, Product, User

__all__ = ["router"]

router = APIRouter(prefix="/orders", tags=["orders"])


class OrderLine(BaseModel):
    product_id: int = Field(gt=0)
    quantity: int = Field(gt=0, le=100)


class OrderIn(BaseModel):
    user_id: int = Field(gt=0)
    items: list[OrderLine] = Field(min_length=1, max_length=50)


def _order_out(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "total": str(order.total),
        "items": [
            {"product_id": i.product_id, "quantity": i.quantity, "unit_price": str(i.unit_price)}
            for i in order.items
        ],
    }


@router.get("")
def order_feed(
    session: DbSession,
    seams: SeamsDep,
    before_id: Annotated[int, Query(ge=1)] = 2**31 - 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The newest orders with their customer and lines (the n-plus-one seam)."""
    loader = seams.pick(n_plus_one.SCENARIO)
    orders = loader.orders(session, before_id, limit)
    return {
        "orders": [
            _order_out(o)
            | {
                "customer": o.user.name,
                "lines": [{"product": i.product.name, "quantity": i.quantity} for i in o.items],
            }
            for o in orders
        ],
        "next_before_id": orders[-1].id if orders else None,
    }


@router.post("", status_code=status.HTTP_201_CREATED)
def create_order(payload: OrderIn, session: DbSession) -> dict[str, Any]:
    if session.get(User, payload.user_id) is None:
        raise HTTPException(404, f"no user {payload.user_id}")
    ids = {line.product_id for line in payload.items}
    products = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
    missing = sorted(ids - products.keys())
    if missing:
        raise HTTPException(404, f"no product {', '.join(map(str, missing))}")
    order = Order(user_id=payload.user_id, status="pending", total=Decimal(0))
    for line in payload.items:
        price = products[line.product_id].price
        order.items.append(
            OrderItem(product_id=line.product_id, quantity=line.quantity, unit_price=price)
        )
        order.total += price * line.quantity
    session.add(order)
    session.commit()
    return _order_out(order)


@router.get("/{order_id}")
def get_order(order_id: int, session: DbSession) -> dict[str, Any]:
    order = session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.items))
    )
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return _order_out(order)


def _order_total(database: Database, order_id: int) -> Decimal | None:
    with database.sessions() as session:
        order = session.get(Order, order_id)
        return None if order is None else order.total


@router.post("/{order_id}/pay")
async def pay_order(order_id: int, request: Request, seams: SeamsDep, upstream: UpstreamDep) -> Any:
    """Charge the order with the payment provider, within the API's 2 s budget.

    Two seams wrap the call: the deadline (`upstream-slow`) around the retries
    (`upstream-flaky`). The idempotency key is derived from the order, so every
    attempt, and every double submit, is the same charge.

    The DB session is closed before the provider is called: a connection held
    through a 6 s call starves the pool (8 connections on SQLite) and queues
    every other request behind it.
    """
    total = await run_in_threadpool(_order_total, request.app.state.db, order_id)
    if total is None:
        raise HTTPException(404, f"no order {order_id}")
    deadline = seams.pick(upstream_slow.SCENARIO)
    retries = seams.pick(upstream_flaky.SCENARIO)
    # The same order at the same amount is the same charge, however often it is
    # submitted or retried.
    key = f"order-{order_id}-{total}"

    async def charge_once() -> Any:
        return await upstream.charge(order_id, str(total), key)

    try:
        payment = await deadline.call("payments", lambda: retries.call("payments", charge_once))
    except UpstreamUnavailable as exc:
        # The fallback: true, fast, and actionable. A background job confirms
        # the charge later with the same idempotency key.
        return JSONResponse(
            {"order_id": order_id, "status": "payment_pending", "detail": str(exc)},
            status_code=status.HTTP_202_ACCEPTED,
        )
    except UpstreamError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"payment failed: {exc}") from None
    return {"order_id": order_id, "status": "paid", "payment": payment}


def _invoice_session(request: Request, seams: SeamsDep) -> Iterator[Session]:
    """The pool-exhaustion seam: where this route's session comes from."""
    provider = seams.pick(pool_exhaustion.SCENARIO)
    yield from provider.sessions(request.app.state.db)


@router.get("/{order_id}/invoice")
def order_invoice(
    order_id: int, session: Annotated[Session, Depends(_invoice_session)]
) -> dict[str, Any]:
    order = session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.items))
    )
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return _order_out(order) | {"invoice": f"INV-{order_id:08d}"}
