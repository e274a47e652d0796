"""Back-office reports: aggregates (the orm-overhead seam)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from faults import orm_overhead
from target_app.api.deps import DbSession, SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.models import Order

__all__ = ["router"]

router = APIRouter(prefix="/reports", tags=["reports"], responses=responses(500, DATABASE_DOWN))


@router.get("/sales")
def sales_by_category(session: DbSession, seams: SeamsDep) -> dict[str, Any]:
    repository = seams.pick(orm_overhead.SCENARIO)
    newest = session.scalar(select(func.max(Order.id))) or 0
    return {"newest_order": newest, "categories": repository.sales(session, newest)}
