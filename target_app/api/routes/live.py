"""Live order status: follow an order over a WebSocket, report a change with a POST.

The websocket-leak seam's routes (faults/websocket_leak.py). A follower gets
the order's status at once on connecting, then each change as it is reported.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, WebSocket, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict
from starlette.websockets import WebSocketDisconnect

from faults import websocket_leak
from faults.websocket_leak import FeedUnavailable
from target_app.api.deps import SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.api.params import ID_MAX, OrderId
from target_app.db import Database
from target_app.models import Order

__all__ = ["router"]

router = APIRouter(prefix="/orders", tags=["orders"], responses=responses(422, 500))

OrderStatus = Literal["pending", "paid", "packed", "shipped", "delivered", "cancelled"]
# WebSocket close codes (RFC 6455 and the registry's private range).
NO_SUCH_ORDER = 4404
UNAVAILABLE = 1013  # "try again later"


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus


def _status_of(database: Database, order_id: int) -> str | None:
    with database.sessions() as session:
        order = session.get(Order, order_id)
        return None if order is None else order.status


def _set_status(database: Database, order_id: int, new: str) -> bool:
    with database.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return False
        order.status = new
        session.commit()
        return True


@router.websocket("/{order_id}/live")
async def follow_order(
    websocket: WebSocket, order_id: Annotated[int, Path(ge=1, le=ID_MAX)]
) -> None:
    """The order's status now, then each change; the client may send "bye" to leave."""
    app = websocket.app
    if await run_in_threadpool(_status_of, app.state.db, order_id) is None:
        await websocket.close(code=NO_SUCH_ORDER, reason=f"no order {order_id}")
        return
    feed = app.state.seams.pick(websocket_leak.SCENARIO)

    async def greeting() -> dict[str, Any]:
        # Read again once the socket is registered: a change since is not lost.
        return {"order_id": order_id, "status": await run_in_threadpool(
            _status_of, app.state.db, order_id)}  # fmt: skip

    await websocket.accept()
    try:
        await feed.follow(order_id, websocket, greeting, app.state.redis)
    except WebSocketDisconnect:
        pass  # the client left; what the registry does about it is the seam's
    except FeedUnavailable as exc:
        await websocket.close(code=UNAVAILABLE, reason=str(exc)[:120])


@router.post(
    "/{order_id}/status",
    responses=responses(
        400,
        (404, "no such order"),
        (503, "the live feed's Redis is unreachable; the change is saved, retry to publish"),
        DATABASE_DOWN,
    ),
)
async def change_status(
    order_id: OrderId, change: StatusChange, request: Request, seams: SeamsDep
) -> dict[str, Any]:
    """Record the order's new status and push it to every client following the order."""
    if not await run_in_threadpool(_set_status, request.app.state.db, order_id, change.status):
        raise HTTPException(404, f"no order {order_id}")
    event = {"order_id": order_id, "status": change.status}
    try:
        await seams.pick(websocket_leak.SCENARIO).publish(order_id, event, request.app.state.redis)
    except FeedUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}
        ) from None
    return event
