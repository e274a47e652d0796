"""db-down: the database goes away. What do clients and the load balancer see?

Network condition (both variants): the Postgres link's proxy is disabled
(connections refused, open ones cut), as in a failover or a network partition.
Seam: `OutagePolicy`, how the app answers a request whose database is
unreachable; the app's handler for `OperationalError` (target_app/api/errors.py)
asks it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from faults._contract import Scenario, Symptom, Toxic

__all__ = ["SCENARIO", "DbDownParams", "LetItCrash", "OutagePolicy", "ServiceUnavailable"]

log = logging.getLogger(__name__)


class DbDownParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retry_after_seconds: int = Field(
        5, ge=1, le=3600, description="fixed: Retry-After sent with the 503"
    )


class OutagePolicy(Protocol):
    """The seam: an answer for a request the database failed, or None to let it raise."""

    def respond(self, exc: OperationalError) -> JSONResponse | None: ...


# --- faulty -----------------------------------------------------------------


class LetItCrash:
    """No handler: the driver's exception becomes a 500 and a traceback per request."""

    def __init__(self, params: DbDownParams) -> None:
        pass

    def respond(self, exc: OperationalError) -> JSONResponse | None:
        return None  # re-raised: Starlette's server error, 500


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

    def respond(self, exc: OperationalError) -> JSONResponse | None:
        with self._lock:
            now = time.monotonic()
            if now - self._last_logged >= self.retry_after:
                self._last_logged = now
                log.error("database unreachable: %s", str(exc.orig).strip().splitlines()[0])
        return JSONResponse(
            {"detail": "the database is unreachable; retry shortly"},
            status_code=503,
            headers={"Retry-After": str(self.retry_after)},
        )


SCENARIO: Scenario[OutagePolicy, DbDownParams] = Scenario(
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
    diagnosis="""\
**What you see.** Faulty: `http_requests_total{status="500"}` for every DB
route, one `OperationalError` traceback per request in app.log, /readyz 500.
Fixed: status 503 with `Retry-After`, one `database unreachable` line per
outage window, /readyz 503 (the balancer drains the instance instead of
retrying into it), and routes that need no DB (`/healthz`) keep answering.

**Global error handling (seed 37).** Register handlers for the exceptions you
can name (`OperationalError` -> 503, validation -> 422 with positions) and one
catch-all that logs the traceback with the request id and returns a generic
500 without it. Never return stack traces to clients.

**Find it.** `summary.json: responses_by_status` and `unhandled_error_rate`;
`grep OperationalError runs/<run>/app.log | wc -l`; `lab status` shows the
`postgres` proxy disabled while the run lasts.
""",
)
