"""The app's error answers: one envelope for every error, and the handlers that build it.

Every error the app sends, whoever raised it (a route's `HTTPException`, the
request's validation, the router's 404/405, the database's outage, a bug), is

    {"error": {"status": 422, "message": "...", "details": [...], "request_id": "..."},
     "detail": ...}

`request_id` is the id the request is logged with and sent back in
`X-Request-Id` (target_app/observability.py): what a client quotes, and what
finds its log lines. `detail` is what FastAPI's default errors carry under that
key, kept so that clients written against them keep working; new clients read
`error`.

No answer carries a stack trace or an exception's text: an unexpected error is
a 500 that says only that, and its traceback goes to the log, once, with the
request id. A 422 lists where and why the request is invalid, not the value
that was sent (that may be a password, or 100,000 rows).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from faults import db_down
from target_app.api.deps import seams_of
from target_app.observability import current_timing

__all__ = [
    "DATABASE_DOWN",
    "ErrorBody",
    "ErrorEnvelope",
    "error_response",
    "install_error_handlers",
    "responses",
]

log = logging.getLogger("target_app.errors")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INTERNAL_ERROR = "internal server error"


class ErrorBody(BaseModel):
    status: int = Field(description="the HTTP status, repeated for clients that log bodies")
    message: str = Field(description="what went wrong, for a person")
    details: list[Any] = Field(
        default_factory=list,
        description="422: one entry per invalid field (`loc`, `msg`, `type`); "
        "else what the message refers to, if anything",
    )
    request_id: str | None = Field(
        description="the request's id, as in X-Request-Id and in the app's log lines"
    )


class ErrorEnvelope(BaseModel):
    """Every error answer of the app."""

    error: ErrorBody
    detail: Any = Field(
        None, description="FastAPI's default error body, for the clients that read it"
    )


# What each status means wherever it appears; a route says more where it can.
_MEANING = {
    400: "the body could not be read (not JSON, or not UTF-8)",
    404: "no such resource",
    409: "the request conflicts with the resource's state",
    413: "the body is larger than the app accepts",
    422: "the request is invalid: `details` lists each parameter and why",
    499: "the client closed the connection before the body arrived",
    500: "an unexpected error: no details, the request id to quote",
    502: "the upstream API answered with an error",
    503: "a service this route needs is down or not configured: the message names it",
}


# The db-down seam's fixed variant, on any route that reads or writes the database.
DATABASE_DOWN = (503, "the database is unreachable; `Retry-After` says when to try again")


def responses(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or a router: these statuses, answered with the envelope.

    A status alone is described by what it means anywhere; `(404, "no such user")`
    says what it means on this route. A status given twice has both meanings.
    """
    described: dict[int, list[str]] = {}
    for entry in statuses:
        status, meaning = entry if isinstance(entry, tuple) else (entry, _MEANING[entry])
        described.setdefault(status, []).append(meaning)
    return {
        status: {"model": ErrorEnvelope, "description": "; or ".join(described[status])}
        for status in sorted(described)
    }


def _request_id() -> str | None:
    # None only without the lab's instrumentation (the benchmark's bare baseline),
    # which assigns no request ids at all.
    timing = current_timing()
    return None if timing is None else timing.request_id


def error_response(
    status: int,
    message: str,
    *,
    details: Sequence[Any] = (),
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(
            status=status, message=message, details=list(details), request_id=_request_id()
        ),
        detail=message if detail is None else detail,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """`HTTPException`s: the routes' refusals, and the router's 404 and 405."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail
    details: list[Any] = []
    if isinstance(detail, dict):  # e.g. the admin API's {"message", "valid", ...}
        message = str(detail.get("message", ""))
        rest = {key: value for key, value in detail.items() if key != "message"}
        details = [rest] if rest else []
    else:
        message = str(detail)
    return error_response(
        exc.status_code, message, details=details, detail=detail, headers=exc.headers
    )


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """422: each invalid parameter, where (`loc`) and why (`msg`, `type`), not its value."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    message = f"invalid request: {_where(first['loc'])}: {first['msg']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(422, message, details=errors, detail=errors)


async def _database_unreachable(request: Request, exc: Exception) -> Response:
    """The db-down seam decides: a deliberate 503, or the exception goes on unhandled."""
    assert isinstance(exc, OperationalError)
    outage = seams_of(request).pick(db_down.SCENARIO).respond(exc)
    if outage is None:
        raise exc
    return error_response(
        503, outage.message, headers={"Retry-After": str(outage.retry_after_seconds)}
    )


class _LastResort:
    """An exception nobody handled: logged with its traceback, answered with a bare 500.

    Starlette's own handler for `Exception` runs outside every middleware, after
    the request-id middleware has finished with the request: its 500 would have
    no request id, in the body or the header, and the log line none either. This
    runs inside it (`install_error_handlers` adds it before `create_app` adds
    the metrics middleware, so it is the inner one).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            log.exception(
                "unhandled exception",
                extra={"fields": {"method": scope["method"], "route": route, "status": 500}},
            )
            if started:
                # Half of an answer is out (a stream): nothing can replace it. The
                # server closes the connection and the client sees it cut.
                raise
            await error_response(500, INTERNAL_ERROR)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Call before the metrics middleware is added (see `_LastResort`)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OperationalError, _database_unreachable)
    app.add_middleware(_LastResort)
