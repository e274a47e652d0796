"""Orders: the shop's writes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, selectinload

from faults import microservice_cascade, n_plus_one, pool_exhaustion, upstream_flaky, upstream_slow
from target_app.api.deps import DbSession, InventoryDep, SeamsDep, UpstreamDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.api.params import ID_MAX, OrderId, OrdersBefore, ProductId, UserId
from target_app.clients.upstream import UpstreamError, UpstreamUnavailable
from target_app.db import Database
from target_app.models import Order, OrderItem, Payment, Product, User

__all__ = ["router"]

router = APIRouter(prefix="/orders", tags=["orders"], responses=responses(422, 500))


class OrderLine(BaseModel):
    product_id: ProductId
    quantity: int = Field(gt=0, le=100)


class OrderIn(BaseModel):
    user_id: UserId
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


@router.get("", responses=responses(DATABASE_DOWN))
def order_feed(
    session: DbSession,
    seams: SeamsDep,
    before_id: OrdersBefore = ID_MAX + 1,
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


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses(400, (404, "no such user, or no such product"), DATABASE_DOWN),
)
def create_order(payload: OrderIn, session: DbSession) -> dict[str, Any]:
    order = _priced(payload, session)
    session.add(order)
    session.commit()
    return _order_out(order)


def _priced(payload: OrderIn, session: Session) -> Order:
    """A new order of `payload`'s lines at today's prices (not added to the session);
    404 for a user or a product that does not exist."""
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
    return order


@router.post(
    "/placements",
    status_code=status.HTTP_201_CREATED,
    responses=responses(
        400,
        (404, "no such user, or no such product"),
        (409, "out of stock: nothing reserved"),
        (502, "the inventory service failed: the order was not kept"),
        (503, "no inventory service configured (INVENTORY_URL)"),
        DATABASE_DOWN,
    )
    | {202: {"description": "kept; its stock is being reserved: follow the status URL"}},
)
def place_order(
    payload: OrderIn, session: DbSession, seams: SeamsDep, inventory: InventoryDep
) -> Any:
    """An order whose stock the inventory service reserves (the microservice-cascade seam)."""
    placement = seams.pick(microservice_cascade.SCENARIO)
    placed = placement.place(session, inventory, _priced(payload, session))
    if placed.status_code >= 400:  # in the app's one error envelope
        raise HTTPException(placed.status_code, placed.body)
    return JSONResponse(placed.body, placed.status_code)


@router.get("/{order_id}", responses=responses((404, "no such order"), DATABASE_DOWN))
def get_order(order_id: OrderId, session: DbSession) -> dict[str, Any]:
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


@router.post(
    "/{order_id}/pay",
    responses=responses(
        (404, "no such order"),
        (502, "the payment provider refused or failed"),
        (503, "no upstream API configured (UPSTREAM_URL)"),
        DATABASE_DOWN,
    )
    | {202: {"description": "the provider did not answer in time: payment pending"}},
)
async def pay_order(
    order_id: OrderId, request: Request, seams: SeamsDep, upstream: UpstreamDep
) -> Any:
    """Charge the order with the payment provider, within the API's 2 s budget.

    Two seams wrap the call: the deadline (`upstream-slow`) around the retries
    (`upstream-flaky`). The idempotency key is derived from the order, so every
    attempt, and every double submit, is the same charge.

    The DB session is closed before the provider is called: a connection held
    through a 6 s call starves the pool (8 connections on SQLite) and queues
    every other request behind it.
    """
    database: Database = request.app.state.db
    total = await run_in_threadpool(_order_total, database, order_id)
    if total is None:
        raise HTTPException(404, f"no order {order_id}")
    deadline = seams.pick(upstream_slow.SCENARIO)
    retries = seams.pick(upstream_flaky.SCENARIO)
    key = _payment_key(order_id, total)

    async def charge_once() -> Any:
        return await upstream.charge(order_id, str(total), key)

    try:
        payment = await deadline.call("payments", lambda: retries.call("payments", charge_once))
    except UpstreamUnavailable as exc:
        # The fallback: true, fast, and actionable. A background follow-up
        # resolves the charge with the provider by the same idempotency key
        # (charging it if the provider never got it) and records the outcome,
        # which the status URL reports.
        async def record(order: int, amount: str, confirmed: dict[str, Any]) -> None:
            await run_in_threadpool(_record_payment, database, order, amount, confirmed)

        upstream.pending.follow_up(order_id, str(total), key, record, retries)
        return _pending(order_id, str(exc))
    except UpstreamError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"payment failed: {exc}") from None
    return {"order_id": order_id, "status": "paid", "payment": payment}


def _payment_key(order_id: int, total: Decimal) -> str:
    # The same order at the same amount is the same charge, however often it is
    # submitted, retried or followed up.
    return f"order-{order_id}-{total}"


def _pending(order_id: int, detail: str) -> JSONResponse:
    """202 payment_pending, with where to learn the outcome (body and Location)."""
    status_url = f"/orders/{order_id}/payment"
    return JSONResponse(
        {"order_id": order_id, "status": "payment_pending", "detail": detail,
         "status_url": status_url},
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": status_url, "Retry-After": "1"},
    )  # fmt: skip


def _record_payment(database: Database, order_id: int, amount: str, payment: Any) -> None:
    """The provider's confirmation of a pending charge, kept for the status URL."""
    ref = str(payment.get("id")) if isinstance(payment, dict) else None
    with database.sessions() as session:
        known = session.scalar(
            select(Payment.id).where(Payment.order_id == order_id, Payment.provider_ref == ref)
        )
        if known is None:
            session.add(
                Payment(order_id=order_id, amount=Decimal(amount), status="captured",
                        provider_ref=ref)
            )  # fmt: skip
            session.commit()


def _recorded_payment(database: Database, order_id: int) -> tuple[Decimal, Payment | None] | None:
    """The order's total and its captured payment of that amount, if one is recorded."""
    with database.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        payment = session.scalar(
            select(Payment)
            .where(
                Payment.order_id == order_id,
                Payment.amount == order.total,
                Payment.status == "captured",
            )
            .limit(1)
        )
        return order.total, payment


_STILL_PENDING: dict[int | str, dict[str, Any]] = {
    202: {"description": "not confirmed yet: poll again after Retry-After"}
}


@router.get(
    "/{order_id}/payment",
    responses=_STILL_PENDING
    | responses(
        (404, "no such order"),
        (503, "no upstream API configured (UPSTREAM_URL)"),
        DATABASE_DOWN,
    ),
)
async def order_payment(
    order_id: OrderId, request: Request, seams: SeamsDep, upstream: UpstreamDep
) -> Any:
    """Where a `payment_pending` answer points: is the order paid yet?

    What the app has recorded first (a follow-up confirmed it); otherwise the
    provider is asked for the charge by the order's idempotency key, within the
    same deadline and retry policies as paying. 200 paid, or 202 pending with
    a Retry-After. Never a charge: a GET only reads.
    """
    database: Database = request.app.state.db
    found = await run_in_threadpool(_recorded_payment, database, order_id)
    if found is None:
        raise HTTPException(404, f"no order {order_id}")
    total, recorded = found
    if recorded is not None:
        return {
            "order_id": order_id,
            "status": "paid",
            "payment": {"id": recorded.provider_ref, "amount": str(recorded.amount),
                        "status": recorded.status},
        }  # fmt: skip
    deadline = seams.pick(upstream_slow.SCENARIO)
    retries = seams.pick(upstream_flaky.SCENARIO)
    key = _payment_key(order_id, total)

    async def look_up() -> Any:
        return await upstream.payment_by_key(key)

    try:
        payment = await deadline.call("payments", lambda: retries.call("payments", look_up))
    except UpstreamError as exc:
        return _pending(order_id, f"the provider could not confirm it yet: {exc}")
    if payment is None:
        return _pending(order_id, "the provider has no charge for this order yet")
    return {"order_id": order_id, "status": "paid", "payment": payment}


log = logging.getLogger("target_app.orders")


async def _invoice_session(request: Request, seams: SeamsDep) -> AsyncIterator[Session]:
    """The pool-exhaustion seam: where this route's session comes from."""
    provider = seams.pick(pool_exhaustion.SCENARIO)
    async with provider.session(request.app.state.db) as session:
        yield session


def _no_connection(exc: PoolTimeout) -> HTTPException:
    """QueuePool's TimeoutError: no pooled connection came free within pool_timeout.
    Logged (the app's count of pool timeouts) and answered 503 with Retry-After."""
    log.warning("db pool timeout", extra={"fields": {"error": str(exc).split(" (")[0]}})
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "no database connection came free in time; retry shortly",
        headers={"Retry-After": "1"},
    )


@router.get(
    "/{order_id}/invoice",
    responses=responses(
        (404, "no such order"),
        (503, "no pooled connection came free in time (Retry-After)"),
        DATABASE_DOWN,
    ),
)
def order_invoice(
    order_id: OrderId, session: Annotated[Session, Depends(_invoice_session)]
) -> dict[str, Any]:
    try:
        order = session.scalar(
            select(Order).where(Order.id == order_id).options(selectinload(Order.items))
        )
    except PoolTimeout as exc:
        raise _no_connection(exc) from None
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return _order_out(order) | {"invoice": f"INV-{order_id:08d}"}
