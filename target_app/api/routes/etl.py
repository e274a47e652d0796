"""ETL jobs triggered through the API (the etl-in-memory seam)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from faults import etl_in_memory
from target_app.api.deps import DbSession, SeamsDep
from target_app.etl import run_job

__all__ = ["router"]

router = APIRouter(prefix="/etl", tags=["etl"])


@router.post("/product-snapshots")
def product_snapshots(
    session: DbSession,
    seams: SeamsDep,
    limit: Annotated[
        int | None, Query(ge=1, description="products to snapshot (all: none)")
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
    return run_job(session, etl, limit=limit, fail_at=fail_at).as_dict()
