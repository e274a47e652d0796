"""in-memory-sessions (seed 29): login sessions kept in a dict of the process.

Seam: `SessionStore`, where `POST /sessions` (log in), `GET /sessions/me` and
`DELETE /sessions` (log out) keep the session id -> user id mapping behind the
`shop_session` cookie (target_app/api/routes/sessions.py).

The faulty variant is the first version of many apps: a module-level dict. On a
laptop (one process) it works. With gunicorn's 2 workers, or 5 servers behind a
load balancer, the login lands on one process and the next request on any: the
others have never heard of the session, and a logged-in user gets a 401 at
random. It also keeps the session id the browser already had when the user logs
in ("attach the user to the visitor's session"): an attacker who planted that id
(a link, a subdomain's cookie) is logged in as the victim once the victim logs
in. That is session fixation.

The fixed variant keeps sessions in Redis, shared by every process and server
(`SET shop:session:<id> <user id> EX ttl`), and always issues a new random id at
login, deleting the one presented: the planted id never becomes a session.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SCENARIO", "ProcessSessions", "RedisSessions", "SessionStore", "SessionsUnavailable"]

KEY_PREFIX = "shop:session:"


class SessionsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int = Field(3600, ge=60, le=30 * 86_400, description="a session's lifetime")


class SessionsUnavailable(RuntimeError):
    """The session store cannot be reached: log-ins and sessions answer 503."""


class SessionStore(Protocol):
    """The seam: sessions by id, for the `shop_session` cookie."""

    ttl_seconds: int

    async def start(self, user_id: int, presented: str | None, redis: Redis | None) -> str:
        """A session for `user_id`, who just logged in; `presented` is the session id
        the request came with, if any. Returns the id to set in the cookie."""
        ...

    async def user_of(self, session_id: str, redis: Redis | None) -> int | None: ...

    async def end(self, session_id: str, redis: Redis | None) -> None: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(32)  # 256 bits: not guessable, not enumerable


# --- faulty -----------------------------------------------------------------


class ProcessSessions:
    """Sessions in this process's memory, keyed by whatever id the browser had."""

    def __init__(self, params: SessionsParams) -> None:
        self.ttl_seconds = params.ttl_seconds
        self._sessions: dict[str, int] = {}

    async def start(self, user_id: int, presented: str | None, redis: Redis | None) -> str:
        session_id = presented or new_session_id()
        self._sessions[session_id] = user_id
        return session_id

    async def user_of(self, session_id: str, redis: Redis | None) -> int | None:
        return self._sessions.get(session_id)

    async def end(self, session_id: str, redis: Redis | None) -> None:
        self._sessions.pop(session_id, None)


# --- fixed ------------------------------------------------------------------


class RedisSessions:
    """Sessions in Redis, shared by every process; a new id at every login."""

    def __init__(self, params: SessionsParams) -> None:
        self.ttl_seconds = params.ttl_seconds

    @staticmethod
    def _redis(redis: Redis | None) -> Redis:
        if redis is None:
            raise SessionsUnavailable("sessions are kept in Redis: set REDIS_URL (`make up`)")
        return redis

    async def start(self, user_id: int, presented: str | None, redis: Redis | None) -> str:
        client = self._redis(redis)
        session_id = new_session_id()
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(KEY_PREFIX + session_id, user_id, ex=self.ttl_seconds)
                if presented:
                    # Whatever the browser had is not a session any more, whoever made it.
                    pipe.delete(KEY_PREFIX + presented)
                await pipe.execute()
        except RedisError as exc:
            raise SessionsUnavailable(f"the session store did not answer: {exc!r}") from exc
        return session_id

    async def user_of(self, session_id: str, redis: Redis | None) -> int | None:
        try:
            value = await self._redis(redis).get(KEY_PREFIX + session_id)
        except RedisError as exc:
            raise SessionsUnavailable(f"the session store did not answer: {exc!r}") from exc
        return None if value is None else int(value)

    async def end(self, session_id: str, redis: Redis | None) -> None:
        try:
            await self._redis(redis).delete(KEY_PREFIX + session_id)
        except RedisError as exc:
            raise SessionsUnavailable(f"the session store did not answer: {exc!r}") from exc


def _signature(s: Signs) -> Finding | None:
    """State kept in one process's memory behind several workers: clients refused
    (4xx) when a request reaches a worker that never saw their session."""
    if s.workers < 2 or (s.number("status_4xx_share") or 0.0) <= 0.005:
        return None
    score = strength(s.number("error_rate"), 0.01)
    return finding(
        "in-memory-sessions",
        score,
        (
            Clue("client error rate", s.number("error_rate"), "< 0.01"),
            Clue("share of 4xx answers", s.number("status_4xx_share"), "0"),
            Clue("app worker processes", float(s.workers)),
        ),
    )


SCENARIO: Scenario[SessionStore, SessionsParams] = Scenario(
    signature=_signature,
    slug="in-memory-sessions",
    title="Login sessions in a process dict: random 401s with several workers, and fixation",
    seeds=(29,),
    kind="fault",
    summary=(
        "POST /sessions keeps the session in a dict of the worker that served the login, "
        "and keeps the id the browser came with; with 2 gunicorn workers a logged-in user "
        "gets 401 on about half the requests, and a planted id logs the attacker in. "
        "Fixed: sessions in Redis, a new random id at every login."
    ),
    faulty=ProcessSessions,
    fixed=RedisSessions,
    params=SessionsParams,
    requires=("redis",),
    workload="sessions",
    app_workers=2,
    default_load={"users": 8, "duration": "30s"},
    symptom=Symptom(
        # The requirement: a logged-in user is never refused as logged out, however
        # many processes serve the API. Every failure of this workload is such a 401
        # (loadtests/workloads/sessions.py); above 1% is the fault.
        metric="error_rate",
        op=">",
        threshold=0.01,
        description="logged-in users get 401s: their session lives in another worker",
    ),
    answers=(
        Answer(
            "Your API runs on 5 servers. How do you maintain user sessions?",
            """\
In one place every server reads: a shared store (Redis) keyed by a random session id in
an HttpOnly, Secure, SameSite cookie, or a signed token the servers verify without a
store (a JWT with a short lifetime, and a refresh token in the store, so it can be
revoked). Not in the process. The faulty `POST /sessions` keeps them in a dict of the
worker that served the login: with 2 workers (2 servers would do the same), error rate
{faulty.error_rate}, every one a 401 for a user who is logged in. The fixed one keeps them
in Redis (`SET shop:session:<id> <user> EX 3600`): error rate {fixed.error_rate}. Sticky
sessions at the load balancer hide the first failure and keep the others: a restart, a
deploy or a scale-down logs everyone on that server out. Reproduce with
`make fault=in-memory-sessions compare`.""",
        ),
        Answer(
            "Why store sessions in Redis?",
            """\
Because it is one store every process reaches in well under a millisecond, with expiry
built in (`EX`), and it survives the app's restarts and deploys. A session is read on
every request: a SQL table works too, but Redis keeps that read off the database. Give
Redis a password and TLS when it is not on loopback, persistence (AOF) if a Redis restart
must not log users out, and a replica or a managed Redis when it must not go down; when
it does go down, this app answers 503 (`Retry-After`) rather than treat everyone as
logged out. A library does the same as middleware: `starsessions` with its `RedisStore`.""",
        ),
        Answer(
            "How to avoid session fixation?",
            """\
Issue a new session id at login (and at any privilege change), and drop the old one. The
faulty variant keeps the id the browser came with, so an id an attacker planted (a link, a
cookie set from a sibling subdomain) becomes the victim's session the moment the victim
logs in: the contract test plants one, logs in as the victim, and the attacker's requests
with it are answered as the victim. The fixed variant ignores the presented id, deletes
it, and sets a fresh `secrets.token_urlsafe(32)`: the planted id gets 401. Also: HttpOnly
(scripts cannot read it), Secure, SameSite=Lax, a lifetime, and logout deleting the
session server-side.""",
        ),
    ),
    diagnosis="""\
**What you see.** Users are logged out at random right after logging in; 401s
with valid-looking cookies; it never happens on a laptop or with one worker,
and "fixes itself" with sticky sessions until a deploy. The 401 rate is about
(workers - 1) / workers.

**Find it.** `lab run in-memory-sessions`: `error_rate` in the report, all 401s
(`responses_by_status`). `grep -rn "sessions\\s*[:=].*{}" app/` finds the dict; the
process that answers is in the response's logs (`pid`).

**Fix.** Keep sessions in a store every process shares (Redis: `SET` with
`EX`), issue a new random id at login and delete the presented one.

**Measured.** The page's "Measured" block and the answers above carry the numbers of the
lab's latest run of both variants (`make fault=in-memory-sessions compare`).
""",
)
