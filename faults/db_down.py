"""db-down: the database goes away. What do clients and the load balancer see?

Network condition (both variants): the Postgres link's proxy is disabled
(connections refused, open ones cut), as in a failover or a network partition.
Seam: `OutagePolicy`, how the app answers a request whose database is
unreachable; the app's handler for `OperationalError` (target_app/api/errors.py)
asks it, and answers in the app's error envelope either way: the fixed
variant's 503, or the faulty variant's exception going on to the app's last
resort, the 500 of an exception nobody handled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from faults._contract import Answer, Scenario, Symptom, Toxic
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = [
    "SCENARIO",
    "DbDownParams",
    "LetItCrash",
    "Outage",
    "OutagePolicy",
    "ServiceUnavailable",
]

log = logging.getLogger(__name__)


class DbDownParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retry_after_seconds: int = Field(
        5, ge=1, le=3600, description="fixed: Retry-After sent with the 503"
    )


@dataclass(frozen=True)
class Outage:
    """A deliberate answer to a request the database failed: 503, this message, Retry-After."""

    message: str
    retry_after_seconds: int


class OutagePolicy(Protocol):
    """The seam: how to answer a request the database failed, or None to let it raise."""

    def respond(self, exc: OperationalError) -> Outage | None: ...


# --- faulty -----------------------------------------------------------------


class LetItCrash:
    """Nothing names the outage: the driver's exception becomes a 500 and a traceback
    per request, from the app's last resort for exceptions nobody handled."""

    def __init__(self, params: DbDownParams) -> None:
        pass

    def respond(self, exc: OperationalError) -> Outage | None:
        return None  # re-raised


# --- fixed ------------------------------------------------------------------


class ServiceUnavailable:
    """A 503 with Retry-After: the truth, in a form clients and balancers act on.

    One log line per outage window instead of a traceback per request, so the
    log still shows everything else that happens meanwhile.
    """

    def __init__(self, params: DbDownParams) -> None:
        self.retry_after = params.retry_after_seconds
        self._last_logged = 0.0
        self._lock = threading.Lock()

    def respond(self, exc: OperationalError) -> Outage | None:
        with self._lock:
            now = time.monotonic()
            if now - self._last_logged >= self.retry_after:
                self._last_logged = now
                log.error("database unreachable: %s", str(exc.orig).strip().splitlines()[0])
        return Outage("the database is unreachable; retry shortly", self.retry_after)


def _signature(s: Signs) -> Finding | None:
    """The database gone and nobody handling it: unhandled 500s with the driver's
    exceptions in the log."""
    unhandled = s.number("unhandled_error_rate")
    score = strength(unhandled, 0.05)
    return finding(
        "db-down",
        score,
        (
            Clue("unhandled 500s / responses", unhandled, "0"),
            Clue("exceptions in app.log", ", ".join(sorted(s.exceptions)) or "-"),
        ),
    )


SCENARIO: Scenario[OutagePolicy, DbDownParams] = Scenario(
    signature=_signature,
    environment="the database is unreachable",
    slug="db-down",
    title="The database goes down: 500s and tracebacks, or 503 with Retry-After",
    seeds=(37,),
    kind="network",
    summary=(
        "The Postgres link is cut. Unhandled, every request is a 500 with a traceback in the "
        "log and /readyz says 500; handled, the app answers 503 with Retry-After, logs one "
        "line per outage, and /readyz tells the load balancer to drain it."
    ),
    faulty=LetItCrash,
    fixed=ServiceUnavailable,
    params=DbDownParams,
    requires=("postgres", "toxiproxy"),
    toxics=(Toxic("postgres", "down"),),
    workload="shop",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="unhandled_error_rate",
        op=">",
        threshold=0.2,
        description="requests end in unhandled 500s instead of a deliberate 503",
    ),
    answers=(
        Answer(
            "FastAPI crashes due to unhandled exception. How do you design global error handling?",
            """\
Name the failures you expect, and catch the rest once. In this app
(target_app/api/errors.py): handlers for `HTTPException`, `RequestValidationError` and the
database's `OperationalError` (503 with `Retry-After`: this scenario's fix), then one last
resort inside the request-id middleware that logs the traceback once with the request id
and answers a bare 500. Every answer uses one envelope
`{"error": {"status", "message", "details", "request_id"}}` and `X-Request-Id`. With the
Postgres link cut, unhandled 500s are {faulty.unhandled_error_rate} of responses faulty
and {fixed.unhandled_error_rate} fixed (the symptom is above 0.2; a fix aims at 0).
Reproduce with `make fault=db-down compare` (needs `make up`);
`grep <request id> runs/<run>/app.log` finds the one log line a client quotes.""",
        ),
        Answer(
            "How do you handle 422 errors?",
            """\
As data in the same envelope: `details` lists every invalid field (`loc`, `msg`,
`type`), `message` says the first in words, and the submitted values are left out (they may
be a password). They are counted (`http_requests_total{status="422"}`), not logged one
line each, since whoever sends them controls that flood. Bound every input in the schema
so that bad input is a 422 and never reaches the database as a 500.""",
        ),
        Answer(
            "Should stack trace be returned?",
            """\
Never to a client, in any environment it can reach: a traceback names files, queries
and sometimes secrets, and the client cannot act on it. It goes to the log under the
request id, which the response carries. `tests/app/test_errors.py` makes routes raise
with a secret in the exception and checks that no body carries it while the log does.""",
        ),
    ),
    diagnosis="""\
**What you see.** Faulty: `http_requests_total{status="500"}` for every DB
route, and per request one `unhandled exception` line in app.log with the
`OperationalError` traceback and the request id; /readyz 500. Fixed: 503 with
`Retry-After`, one `database unreachable` line per outage window (no
traceback), /readyz 503 (the balancer drains the instance instead of retrying
into it), and routes that need no DB (`/healthz`) keep answering. Both answer
in the app's one error envelope: the variants differ in whether the outage has
a name, not in how an error looks.

**Global error handling (seed 37).** Three layers, in target_app/api/errors.py.
Handlers for the exceptions the app can name: `HTTPException` (the routes'
refusals, the router's 404/405), `RequestValidationError` (422), and
`OperationalError` (this seam: 503 + Retry-After). Then one last resort for
everything else, inside the request-id middleware (Starlette's own `Exception`
handler runs outside every middleware, where the request id is already gone):
it logs the traceback once, with the request id, and answers a bare 500. Every
answer is `{"error": {"status", "message", "details", "request_id"}}`, and the
request id is also in `X-Request-Id` (a client's own id is kept): what a user
quotes, and what `grep <id> app.log` finds. The faulty variant is what an app
without a name for the outage does: the driver's exception reaches the last
resort, so every request is a 500 and a traceback, and nothing tells a client
or a balancer to come back later. A failure after a streamed response has
started cannot become a 500: the connection is cut and the log has it.

**How do you handle 422 errors?** As data: `details` lists each invalid field
(`loc`, `msg`, `type`, all of them, not just the first), and `message` says
the first in words. Not the submitted values: they may be a password or
100,000 rows, and an error body is logged by proxies and clients. Not logged
by the app either: a 422 is the client's mistake, counted in
`http_requests_total{status="422"}`; a log line per bad request is a flood
that whoever sends them controls. Bound the inputs in the schema (ids to what
their column holds) so that bad input is a 422 and never a database error.

**Should a stack trace be returned?** Never, in any environment that a client
can reach: it names files, libraries, queries and sometimes secrets, and it
helps nobody who cannot fix the code. The lab proves it:
`tests/app/test_errors.py` makes routes raise (a secret in the exception's
text) and checks that no body carries a traceback or the text, while the log
line under the same request id has both. In development, read the log.

**Find it.** `summary.json: responses_by_status` and `unhandled_error_rate`;
`grep -c '"unhandled exception"' runs/<run>/app.log` (one per request) against
`grep -c 'database unreachable'` (one per window); `lab status` shows the
`postgres` proxy disabled while the run lasts.
""",
)
