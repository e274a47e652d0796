"""FastAPI dependencies, as `Annotated` types the routes declare."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from redis.asyncio import Redis
from sqlalchemy.orm import Session

from faults import FaultRuntime
from faults.microservice_cascade import InventoryLink
from target_app.clients.upstream import UpstreamClient
from target_app.db import Database
from target_app.settings import Settings

__all__ = [
    "AdminDep",
    "DbSession",
    "InventoryDep",
    "RedisDep",
    "SeamsDep",
    "SettingsDep",
    "ToggleAllowedDep",
    "UpstreamDep",
    "admin_token_refusal",
    "redis_of",
    "seams_of",
]


# The dependencies that only read app.state are `async def`: FastAPI runs a
# `def` dependency in the threadpool, so each would cost every request a
# thread hop (a hand-off and two wake-ups) for an attribute read. A refused
# payment spent more time in those hops than in its own work.


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _session(request: Request) -> AsyncIterator[Session]:
    """A session for the request, closed (its connection returned) whatever happens.

    Async on purpose. As a sync `yield` dependency, the session's connection
    stays checked out from the end of the endpoint's thread until the
    dependency's exit, across the response validation, which needs a thread
    from the same threadpool. Under a burst, every thread of the pool can be
    an endpoint waiting for a connection while the requests that hold the
    connections wait for a thread: a deadlock until `pool_timeout` (`lab
    bench` caught one uvicorn worker at 20 req/s instead of 430, with 40
    threads in `QueuePool._do_get`). Here a request first waits for a slot
    (one per pooled connection) on the event loop, holding no thread; with a
    slot, a connection is free when its endpoint asks.
    """
    database: Database = request.app.state.db
    async with database.request_session() as session:
        yield session


def seams_of(request: Request) -> FaultRuntime:
    """The app's one way to a seam: `seams_of(request).pick(<module>.SCENARIO)`.

    Routes take it as `SeamsDep`; code that is not a route (an exception
    handler) calls this. `pick` returns the seam's interface type, so mypy
    checks the route's use of it against both variants.
    """
    runtime: FaultRuntime = request.app.state.seams
    return runtime


def _configured(request: Request, attribute: str, service: str, setting: str) -> Any:
    """A dependency's client from app.state, or a 503 that names the service and how to get it."""
    client = getattr(request.app.state, attribute)
    if client is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"this route needs {service} and {setting} is not set; start the lab's services "
            "with `make up`",
        )
    return client


async def _upstream(request: Request) -> UpstreamClient:
    client: UpstreamClient = _configured(request, "upstream", "the upstream API", "UPSTREAM_URL")
    return client


async def _inventory(request: Request) -> InventoryLink:
    link: InventoryLink = _configured(
        request, "inventory", "the inventory service", "INVENTORY_URL"
    )
    return link


async def redis_of(request: Request) -> Redis:
    """The app's Redis client, or the 503 that says how to get one (RedisDep)."""
    client: Redis = _configured(request, "redis", "Redis", "REDIS_URL")
    return client


SettingsDep = Annotated[Settings, Depends(_settings)]
UpstreamDep = Annotated[UpstreamClient, Depends(_upstream)]
InventoryDep = Annotated[InventoryLink, Depends(_inventory)]
RedisDep = Annotated[Redis, Depends(redis_of)]
DbSession = Annotated[Session, Depends(_session)]


async def _seams(request: Request) -> FaultRuntime:
    return seams_of(request)


SeamsDep = Annotated[FaultRuntime, Depends(_seams)]


def admin_token_refusal(
    settings: Settings, authorization: str | None, x_lab_token: str | None = None
) -> HTTPException | None:
    """Why these credentials do not open the lab admin API (or the live log), or None.

    The token comes as `Authorization: Bearer <token>` or `X-Lab-Token`. With no
    LAB_ADMIN_TOKEN configured, every token is refused: nothing is open by default.
    A WebSocket route, which has no Request to depend on, calls this itself.
    """
    supplied = x_lab_token
    if authorization and authorization.lower().startswith("bearer "):
        supplied = authorization[7:].strip()
    if not supplied:
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the lab admin API needs a token: send 'Authorization: Bearer <LAB_ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.lab_admin_token.get_secret_value()
    if not expected or not secrets.compare_digest(supplied.encode(), expected.encode()):
        return HTTPException(status.HTTP_403_FORBIDDEN, "wrong lab admin token")
    return None


async def _require_admin(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
    x_lab_token: Annotated[str | None, Header()] = None,
) -> None:
    refusal = admin_token_refusal(settings, authorization, x_lab_token)
    if refusal is not None:
        raise refusal


async def _refuse_in_production(settings: SettingsDep) -> None:
    if settings.is_production:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "faults cannot be toggled when LAB_ENV=production",
        )


AdminDep = Annotated[None, Depends(_require_admin)]
ToggleAllowedDep = Annotated[None, Depends(_refuse_in_production)]
