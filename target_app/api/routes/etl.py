"""ETL jobs triggered through the API (the etl-in-memory seam)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from faults import etl_in_memory
from target_app.api.deps import DbSession, SeamsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.api.params import ID_MAX
from target_app.etl import NeedsPostgres, run_job

__all__ = ["router"]

router = APIRouter(prefix="/etl", tags=["etl"], responses=responses(422, 500))


@router.post(
    "/product-snapshots",
    responses=responses(
        (503, "the job needs PostgreSQL (its COPY) and DATABASE_URL names another database"),
        DATABASE_DOWN,
    ),
)
def product_snapshots(
    session: DbSession,
    seams: SeamsDep,
    limit: Annotated[
        int | None, Query(ge=1, le=ID_MAX, description="products to snapshot (all: none)")
    ] = None,
    fail_at: Annotated[
        float | None,
        Query(gt=0, lt=1, description="inject a failure in the first attempt at this fraction"),
    ] = None,
) -> dict[str, Any]:
    """Snapshot the products (price with tax, normalised name) into product_snapshots.

    Runs the job to the end in this request (a worker thread): one retry after a
    failure, then the answer says what each attempt did and what the target holds.
    A production API would hand the job to a queue and answer 202 with its id.
    """
    etl = seams.pick(etl_in_memory.SCENARIO)
    try:
        return run_job(session, etl, limit=limit, fail_at=fail_at).as_dict()
    except NeedsPostgres as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
