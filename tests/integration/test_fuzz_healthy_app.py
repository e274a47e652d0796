"""A schema-driven fuzzer against the healthy app: no server error, no undocumented status.

schemathesis reads the app's own OpenAPI schema and sends every operation its
examples, its boundary and negative cases (the coverage phase: a bound plus
one, a wrong type, a missing field, an unexpected method) and EXAMPLES random
cases that fit the schema (the fuzzing phase), from a fixed seed: the same
cases on every run. Every answer must be

- no 5xx, except the documented 503 of a route whose service this setting
  lacks (Redis, the upstream API), which must name it;
- a status the operation documents;
- for an error, the app's envelope, with the request id of `X-Request-Id` and
  no traceback.

The app: every fault off, on a seeded SQLite shop, in process (ASGI), without
Redis or the upstream API; the admin API is not in the schema. It is built when
pytest imports this module, since schemathesis makes one test per operation
while pytest collects (its fixture-based loader does not run on pytest 9); its
database is seeded and its lifespan run by a fixture, when a test needs it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from target_app.main import create_app
from tests.app.helpers import ROWS, lab_settings, running, sqlite_url

pytestmark = pytest.mark.integration

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

EXAMPLES = 100  # random cases per operation, on top of its examples and coverage cases
SEED = 37
# Operations whose service the in-process app does not have: their documented 503.
NEEDS_A_SERVICE = {
    "POST /etl/product-snapshots": "PostgreSQL",  # its COPY; the app runs on SQLite here
    "GET /catalog/stats": "Redis",
    "POST /sessions": "Redis",  # the fixed variant keeps sessions in Redis
    "GET /sessions/me": "Redis",
    "DELETE /sessions": "Redis",
    "POST /orders/{order_id}/status": "Redis",  # the fixed live feed publishes on Redis
    "POST /etl/jobs": "Redis",  # the fixed variant queues the job on Redis
    "GET /etl/jobs/{job_id}/events": "Redis",  # the job's events come from Redis
    "GET /products/{product_id}/availability": "upstream",
    "POST /orders/{order_id}/pay": "upstream",
    "GET /orders/{order_id}/payment": "upstream",
    "POST /orders/placements": "inventory service",
    "GET /recommendations/{user_id}": "model server",
    "POST /webhooks/payments": "payment provider",  # the upstream's API (and the queue: Redis)
}

HOME = Path(tempfile.mkdtemp(prefix="lab-fuzz-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)  # also when no test of it runs
DATABASE = HOME / "shop.sqlite"
APP = create_app(lab_settings(HOME, DATABASE))


class StartedElsewhere:
    """The app for schemathesis, without its lifespan: the `healthy_app` fixture runs it.

    Refusing the lifespan scope before reading a message is how an ASGI app says it
    has none; schemathesis would otherwise start the app when it loads the schema."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the healthy_app fixture runs the lifespan")
        await self.app(scope, receive, send)


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # No example database: a run does not replay what an earlier one found.
        "generation": {"max-examples": EXAMPLES, "database": "none"},
        # No links between the operations in a FastAPI schema: nothing to chain.
        "phases": {"stateful": {"enabled": False}},
        "operations": [
            {
                "include-name": sorted(NEEDS_A_SERVICE),
                "checks": {"not_a_server_error": {"expected-statuses": [
                    "2xx", "3xx", "4xx", 503,
                ]}},
            }
        ],
    }
)  # fmt: skip
schema = schemathesis.openapi.from_asgi("/openapi.json", StartedElsewhere(APP), config=CONFIG)


@dataclass
class Tally:
    """What the fuzzer sent and got, for the summary test."""

    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    server_errors: list[str] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)

    def record(self, case: schemathesis.Case, status: int) -> None:
        label = case.operation.label
        self.statuses[label][status] += 1
        request = f"{case.method} {case.formatted_path} -> {status}"
        if status >= 500 and not (status == 503 and label in NEEDS_A_SERVICE):
            self.server_errors.append(request)
        # An unexpected method is not the operation's: 405 is its answer, and documented
        # nowhere, by design.
        documented = {str(code) for code in case.operation.responses.status_codes}
        if case.method.upper() == case.operation.method.upper() and str(status) not in documented:
            self.undocumented.append(request)

    @property
    def cases(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())


TALLY = Tally()


@pytest.fixture(scope="module")
def healthy_app() -> Iterator[None]:
    from target_app.seed import seed

    seed(sqlite_url(DATABASE), ROWS)
    with running(APP):
        yield


def _check_error_envelope(case: schemathesis.Case, response: schemathesis.Response) -> None:
    if response.status_code < 400 or case.method.upper() == "HEAD":  # HEAD: no body
        return
    # Not just "Traceback": a fuzzed name may be that word, and a 404 names what it missed.
    assert "Traceback (most recent call last)" not in response.text
    error = response.json()["error"]
    assert error["status"] == response.status_code
    assert error["request_id"] == response.headers["x-request-id"][0]
    if response.status_code == 503 and case.operation.label in NEEDS_A_SERVICE:
        assert NEEDS_A_SERVICE[case.operation.label] in error["message"]


@schema.parametrize()
def test_no_server_error_and_every_status_documented(
    case: schemathesis.Case, healthy_app: None
) -> None:
    response = case.call()
    TALLY.record(case, response.status_code)
    _check_error_envelope(case, response)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])


def test_the_fuzzer_reached_every_operation(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the cases (pytest keeps a module's order): what they covered, in numbers."""
    if not TALLY.statuses:
        pytest.skip("the fuzz cases did not run in this session")
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert set(TALLY.statuses) == operations
    summary = (
        f"fuzzed {len(operations)} operations with {TALLY.cases} cases (seed {SEED}, "
        f"{EXAMPLES} random per operation): {len(TALLY.server_errors)} server errors, "
        f"{len(TALLY.undocumented)} undocumented statuses"
    )
    with capsys.disabled():
        print(f"\n{summary}")
    assert TALLY.server_errors == []
    assert TALLY.undocumented == []
    assert TALLY.cases >= 20 * len(operations)  # not a fuzzer that sent nothing
