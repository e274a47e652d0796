"""Recommendations from the model server (the lab's upstream): the blocking-call seam.

The app's client for the model server is one `httpx.AsyncClient`, opened by this
router's lifespan (FastAPI runs it inside the app's) and closed with it: one
connection pool for the worker's lifetime, and timeouts, so that a model server that
hangs costs a request 2 s at most, not a worker its connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status

from faults import blocking_call
from target_app.api.deps import SeamsDep
from target_app.api.errors import responses
from target_app.api.params import UserId
from target_app.observability import measure_upstream

__all__ = ["MODEL_LIMITS", "MODEL_TIMEOUT", "router"]

DEPENDENCY = "recommendations"  # upstream_request_duration_seconds{dependency}
# The model answers in ~100 ms: 2 s to answer (1 s to connect) is a hung server, and
# recommendations are not worth a longer wait.
MODEL_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
MODEL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@contextlib.asynccontextmanager
async def _model_server(app: FastAPI) -> AsyncIterator[None]:
    url = app.state.settings.upstream_url
    if not url:
        app.state.model_server = None
        yield
        return
    async with httpx.AsyncClient(base_url=url, timeout=MODEL_TIMEOUT, limits=MODEL_LIMITS) as http:
        app.state.model_server = blocking_call.ModelServer(url=url, http=http)
        yield
    app.state.model_server = None


async def _configured(request: Request) -> blocking_call.ModelServer:  # no thread hop
    server: blocking_call.ModelServer | None = getattr(request.app.state, "model_server", None)
    if server is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "no model server configured (UPSTREAM_URL); start the lab's services with `make up`",
        )
    return server


ModelServerDep = Annotated[blocking_call.ModelServer, Depends(_configured)]

router = APIRouter(
    prefix="/recommendations",
    tags=["recommendations"],
    lifespan=_model_server,
    responses=responses(422, 500),
)


@router.get(
    "/{user_id}",
    responses=responses(
        (502, "the model server failed"),
        (503, "no model server configured (UPSTREAM_URL)"),
        (504, "the model server did not answer in time"),
    ),
)
async def recommendations(
    user_id: UserId, seams: SeamsDep, server: ModelServerDep
) -> dict[str, Any]:
    client = seams.pick(blocking_call.SCENARIO)
    with measure_upstream(DEPENDENCY) as call:
        try:
            product_ids = await client.recommend(server, user_id)
        except httpx.TimeoutException as exc:
            call.outcome = type(exc).__name__
            raise HTTPException(
                status.HTTP_504_GATEWAY_TIMEOUT, "the model server did not answer in time"
            ) from exc
        except httpx.HTTPError as exc:
            call.outcome = type(exc).__name__
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, f"the model server failed: {type(exc).__name__}"
            ) from exc
        call.outcome = "ok"
    return {"user_id": user_id, "product_ids": product_ids}
