"""Users."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from target_app.api.deps import DbSession
from target_app.models import User

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/{user_id}")
def get_user(user_id: int, session: DbSession) -> dict[str, Any]:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"no user {user_id}")
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role}
