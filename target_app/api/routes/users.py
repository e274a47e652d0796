"""Users."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from faults import db_latency
from target_app.api.deps import DbSession, SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.api.params import UserId
from target_app.models import User

__all__ = ["router"]

router = APIRouter(
    prefix="/users",
    tags=["users"],
    responses=responses((404, "no such user"), 422, 500, DATABASE_DOWN),
)


@router.get("/{user_id}")
def get_user(user_id: UserId, session: DbSession) -> dict[str, Any]:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"no user {user_id}")
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role}


@router.get("/{user_id}/dashboard")
def user_dashboard(user_id: UserId, request: Request, seams: SeamsDep) -> dict[str, Any]:
    """Order count, money spent and recent orders: the db-latency seam.

    A read on an autocommit connection: no BEGIN and no ROLLBACK round trips.
    """
    repository = seams.pick(db_latency.SCENARIO)
    engine = request.app.state.db.engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        dashboard = repository.load(conn, user_id)
    if dashboard is None:
        raise HTTPException(404, f"no user {user_id}")
    return dashboard
