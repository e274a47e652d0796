"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from sqlalchemy import text

from target_app.api.deps import DbSession
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.metrics import render_latest

__all__ = ["router"]

router = APIRouter(tags=["ops"], responses=responses(500))


@router.get("/healthz")
async def healthz() -> dict[str, object]:
    """The process is up. Cheap on purpose: it is also the 'unrelated endpoint' of scenarios."""
    return {"status": "ok", "pid": os.getpid()}


@router.get("/readyz", responses=responses(DATABASE_DOWN))
def readyz(session: DbSession) -> dict[str, object]:
    """Ready to serve: the database answers."""
    session.execute(text("SELECT 1"))
    return {"status": "ready", "pid": os.getpid()}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)
