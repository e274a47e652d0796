"""Back-office reports: aggregates (the orm-overhead seam)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from faults.orm_overhead import AggregateInPython
from target_app.api.deps import DbSession, FaultsDep
from target_app.models import Order

__all__ = ["router"]

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/sales")
def sales_by_category(session: DbSession, faults: FaultsDep) -> dict[str, Any]:
    repository: AggregateInPython = faults.pick("orm-overhead")
    newest = session.scalar(select(func.max(Order.id))) or 0
    return {"newest_order": newest, "categories": repository.sales(session, newest)}
