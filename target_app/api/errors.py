"""Exception handlers: the app's answers when something it depends on fails."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError

from faults import db_down
from target_app.api.deps import seams_of

__all__ = ["install_error_handlers"]


async def _database_unreachable(request: Request, exc: Exception) -> Response:
    """The db-down seam decides: a deliberate 503, or the exception goes on to a 500."""
    assert isinstance(exc, OperationalError)
    response = seams_of(request).pick(db_down.SCENARIO).respond(exc)
    if response is None:
        raise exc
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OperationalError, _database_unreachable)
