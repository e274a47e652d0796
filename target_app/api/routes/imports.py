"""Bulk imports (the row-by-row-insert seam)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, status

from faults import row_by_row_insert
from target_app.api.deps import DbSession, SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.imports import RowError

__all__ = ["router"]

router = APIRouter(prefix="/imports", tags=["imports"], responses=responses(500))


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    responses=responses(
        400, (422, "the body is not a list of objects, or the import stopped"), DATABASE_DOWN
    ),
)
def import_products(
    session: DbSession,
    seams: SeamsDep,
    rows: list[dict[str, Any]] = Body(..., max_length=100_000),  # noqa: B008
) -> dict[str, Any]:
    """Insert a batch of products; the answer lists the rows that were rejected and why."""
    loader = seams.pick(row_by_row_insert.SCENARIO)
    try:
        return loader.load(session, rows)
    except RowError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"import stopped: {exc}"
        ) from None
