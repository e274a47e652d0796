"""The in-process harness: the app with its lifespan run, and a synchronous client.

`open_lab(settings)` builds the app with `create_app(settings)`, runs its
lifespan through the ASGI lifespan protocol (as uvicorn does, so `app.state`
is complete), and drives it with `httpx.AsyncClient(transport=ASGITransport)`
from the test's thread through an anyio blocking portal: one event loop per
lab, owned by the portal, where the app's async code and its lifespan tasks
run. No socket, no process.

Every request also goes through `Recording`, which notes which route answered
and with which status, so `test_routes_covered.py` can check that every route
of the app was exercised.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import httpx
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr

from target_app.main import create_app
from target_app.settings import Settings

__all__ = [
    "N_ORDERS",
    "N_USERS",
    "ROUTE_LOG",
    "ROWS",
    "UPLOAD_CAP",
    "Client",
    "Lab",
    "Recording",
    "RouteLog",
    "copy_db",
    "error_of",
    "lab_settings",
    "open_lab",
    "running",
    "sqlite_url",
]

ROWS = 400  # products seeded; 40 users, 80 orders, 193 order items (target_app/seed.py)
N_USERS = ROWS // 10
N_ORDERS = ROWS // 5
UPLOAD_CAP = 4 * 1024 * 1024  # UPLOAD_MAX_BYTES of the labs under test

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def copy_db(source: Path, target: Path) -> Path:
    """A copy of a SQLite database that no app has open (the seeded one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `error` of an error answer, checked to be the app's envelope: the answer's
    status, and the request id its `X-Request-Id` header carries."""
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == response.status_code, error
    assert error["request_id"] == response.headers["x-request-id"], error
    return error


class RouteLog:
    """(method, route path) -> the statuses the app answered with, over the session."""

    def __init__(self) -> None:
        self.statuses: defaultdict[tuple[str, str], set[int]] = defaultdict(set)

    def record(self, method: str, path: str, status: int) -> None:
        self.statuses[(method, path)].add(status)


ROUTE_LOG = RouteLog()


class Recording:
    """ASGI wrapper: which route answered each request, and its status.

    The route is `scope["route"]`; FastAPI does not set it for its own Starlette
    routes (/docs, /openapi.json), whose endpoint names them instead.
    """

    def __init__(self, app: FastAPI, log: RouteLog) -> None:
        self.app = app
        self.log = log
        self._by_endpoint: dict[object, str] | None = None

    def _path(self, scope: Scope) -> str | None:
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        if self._by_endpoint is None:
            self._by_endpoint = {
                route.endpoint: route.path
                for route in iter_route_contexts(self.app.routes)
                if route.endpoint is not None and route.path is not None
            }
        return self._by_endpoint.get(scope.get("endpoint"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = self._path(scope)
            if path is not None and status is not None:
                self.log.record(scope["method"], path, status)


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Start-up and shut-down through the ASGI lifespan protocol, as a server does."""
    to_app, app_inbox = anyio.create_memory_object_stream[Message](4)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](4)
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def run() -> None:
        await app(scope, app_inbox.receive, app_outbox.send)

    failed: BaseException | None = None  # in the `with` block: raised as is, not grouped
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        started = await from_app.receive()
        if started["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app did not start: {started.get('message')}")
        try:
            yield
        except BaseException as exc:
            failed = exc
        await to_app.send({"type": "lifespan.shutdown"})
        stopped = await from_app.receive()
        if stopped["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"the app did not shut down: {stopped.get('message')}")
    if failed is not None:
        raise failed


@contextlib.contextmanager
def running(app: ASGIApp) -> Iterator[anyio.from_thread.BlockingPortal]:
    """`app` started (its lifespan run) in an event loop of its own, a blocking portal."""
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_lifespan(app)),
    ):
        yield portal


class Client:
    """A synchronous face on httpx's AsyncClient: each call runs in the portal's loop."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    @property
    def portal(self) -> anyio.from_thread.BlockingPortal:
        """The app's event loop, for a test that drives the app over ASGI itself (a stream
        without end, which httpx's ASGI transport would wait for)."""
        return self._portal

    @property
    def cookies(self) -> httpx.Cookies:
        """The client's cookie jar: what responses set is sent again, as a browser does."""
        return self._client.cookies

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self._client.request, method, url, **kwargs)
        return self._portal.call(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@dataclass
class Lab:
    """One app under test, its client, and the admin API's token."""

    app: FastAPI
    client: Client
    settings: Settings

    @property
    def token(self) -> str:
        return self.settings.lab_admin_token.get_secret_value()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def state_file(self) -> Path:
        return self.settings.lab_state_file

    @property
    def upload_dir(self) -> Path:
        return self.settings.upload_dir

    # -- the admin API, asserting that each call did what it says ----------------

    def listing(self) -> dict[str, dict[str, Any]]:
        response = self.client.get("/_lab/faults", headers=self.auth)
        assert response.status_code == 200, response.text
        return {entry["slug"]: entry for entry in response.json()["faults"]}

    def variant_here(self, slug: str) -> str:
        return str(self.listing()[slug]["variant_here"])

    def enable(self, slug: str, **params: Any) -> dict[str, Any]:
        """The faulty variant on, through `PUT /_lab/faults/{slug}`; serving at once."""
        response = self.client.put(f"/_lab/faults/{slug}", json=params, headers=self.auth)
        assert response.status_code == 200, response.text
        assert self.variant_here(slug) == "faulty"
        body: dict[str, Any] = response.json()
        return body

    def disable(self, slug: str) -> None:
        response = self.client.delete(f"/_lab/faults/{slug}", headers=self.auth)
        assert response.status_code == 200, response.text
        assert self.variant_here(slug) == "fixed"

    def reset(self) -> list[str]:
        response = self.client.post("/_lab/reset", headers=self.auth)
        assert response.status_code == 200, response.text
        was: list[str] = response.json()["reset"]
        return was

    @contextlib.contextmanager
    def faulty(self, slug: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Serve the faulty variant of `slug` for the `with` block, then the fixed one again."""
        enabled = self.enable(slug, **params)
        try:
            yield enabled
        finally:
            self.disable(slug)


def lab_settings(home: Path, database: Path | str, **overrides: Any) -> Settings:
    """Settings for an app under test: everything under `home`, nothing from the environment
    that matters (no Redis, no upstream, no FAULTS, no `.env`)."""
    values: dict[str, Any] = {
        "lab_env": "test",
        "database_url": database if isinstance(database, str) else sqlite_url(database),
        "lab_state_file": home / "state" / "toggles.json",
        "lab_admin_enabled": True,
        "lab_admin_token": SecretStr(secrets.token_urlsafe(24)),
        "upload_dir": home / "uploads",
        "upload_max_bytes": UPLOAD_CAP,
        "redis_url": None,
        "upstream_url": None,
        "faults": [],
        "lab_instrumentation": True,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.contextmanager
def open_lab(
    settings: Settings,
    *,
    raise_app_exceptions: bool = True,
    routers: Sequence[APIRouter] = (),
) -> Iterator[Lab]:
    """The app built from `settings`, started (lifespan), with a client; shut down after.

    `raise_app_exceptions=False` lets an exception that escapes the app come back as
    the 500 a server would send, for the tests that are about that 500. `routers` are
    added to the app: test-only routes, e.g. one that fails.
    """
    app = create_app(settings)
    for router in routers:
        app.include_router(router)
    asgi = Recording(app, ROUTE_LOG)
    with running(asgi) as portal:
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=raise_app_exceptions)
        client = httpx.AsyncClient(transport=transport, base_url="http://lab.test")
        try:
            yield Lab(app, Client(portal, client), settings)
        finally:
            portal.call(client.aclose)
