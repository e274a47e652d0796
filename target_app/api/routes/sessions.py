"""Log in, who am I, log out: cookie sessions (the in-memory-sessions seam's routes).

The session id travels in the `shop_session` cookie: HttpOnly (no script reads
it), SameSite=Lax (not sent on another site's form posts), Secure in
production, with the session's lifetime. Where the id maps to a user is the
seam's business (faults/in_memory_sessions.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Cookie, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from faults import in_memory_sessions
from faults.in_memory_sessions import SessionsUnavailable
from target_app.api.deps import SeamsDep, SettingsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.db import Database
from target_app.models import User
from target_app.passwords import verify_password

__all__ = ["COOKIE", "router"]

COOKIE = "shop_session"
T = TypeVar("T")

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=responses(422, 500))

NOT_LOGGED_IN = (401, "no session, or it ended: log in with POST /sessions")
STORE_DOWN = (503, "the session store is unreachable; `Retry-After` says when to try again")
SessionCookie = Annotated[str | None, Cookie(alias=COOKIE, max_length=256)]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


def _authenticate(database: Database, credentials: Credentials) -> int | None:
    """The user's id if the password is theirs. Argon2 takes ~0.2 s of CPU: in a thread."""
    with database.sessions() as session:
        row = session.execute(
            select(User.id, User.password_hash).where(User.email == credentials.email)
        ).first()
    if not verify_password(credentials.password, None if row is None else row.password_hash):
        return None
    return None if row is None else int(row.id)


def _user(database: Database, user_id: int) -> dict[str, Any] | None:
    with database.sessions() as session:
        user = session.get(User, user_id)
        if user is None:
            return None
        return {"id": user.id, "email": user.email, "name": user.name, "role": user.role}


async def _stored(call: Awaitable[T]) -> T:
    """The session store's answer, or a 503 that says to retry (never 'logged out')."""
    try:
        return await call
    except SessionsUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}
        ) from None


def _clear_cookie(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def _not_logged_in() -> HTTPException:
    """401, and the cookie cleared: a browser that logs in again then presents no id."""
    cleared = _clear_cookie(Response())
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        NOT_LOGGED_IN[1],
        headers={"set-cookie": cleared.headers["set-cookie"]},
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses(400, (401, "wrong e-mail or password"), STORE_DOWN, DATABASE_DOWN),
)
async def log_in(
    credentials: Credentials,
    request: Request,
    response: Response,
    seams: SeamsDep,
    settings: SettingsDep,
    shop_session: SessionCookie = None,
) -> dict[str, Any]:
    """Log in: the session's id in the `shop_session` cookie."""
    user_id = await run_in_threadpool(_authenticate, request.app.state.db, credentials)
    if user_id is None:
        # One answer for an unknown e-mail and a wrong password: no account enumeration.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong e-mail or password")
    store = seams.pick(in_memory_sessions.SCENARIO)
    session_id = await _stored(store.start(user_id, shop_session, request.app.state.redis))
    response.set_cookie(
        COOKIE, session_id, max_age=store.ttl_seconds, path="/", httponly=True,
        samesite="lax", secure=settings.is_production,
    )  # fmt: skip
    return {"user_id": user_id, "expires_in": store.ttl_seconds}


@router.get("/me", responses=responses(NOT_LOGGED_IN, STORE_DOWN, DATABASE_DOWN))
async def who_am_i(request: Request, seams: SeamsDep, shop_session: SessionCookie = None) -> Any:
    """The logged-in user, from the session cookie."""
    if not shop_session:
        raise _not_logged_in()
    store = seams.pick(in_memory_sessions.SCENARIO)
    user_id = await _stored(store.user_of(shop_session, request.app.state.redis))
    if user_id is None:
        raise _not_logged_in()
    user = await run_in_threadpool(_user, request.app.state.db, user_id)
    if user is None:  # the account is gone: so is the session
        await _stored(store.end(shop_session, request.app.state.redis))
        raise _not_logged_in()
    return user


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=responses(STORE_DOWN))
async def log_out(
    request: Request, seams: SeamsDep, shop_session: SessionCookie = None
) -> Response:
    """Log out: the session ends on the server, and the cookie is cleared."""
    if shop_session:
        store = seams.pick(in_memory_sessions.SCENARIO)
        await _stored(store.end(shop_session, request.app.state.redis))
    return _clear_cookie(Response(status_code=status.HTTP_204_NO_CONTENT))
