"""The app's error answers (seed 37): one envelope, no stack trace, the request id to quote.

Every error, whoever raised it, is `{"error": {"status", "message", "details",
"request_id"}, "detail": ...}` (target_app/api/errors.py). The 500s come from a
router added to a test app only: routes that fail on purpose, which the real app
does not have.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from target_app.observability import JsonFormatter
from tests.app.helpers import Lab, error_of, lab_settings, open_lab

pytestmark = pytest.mark.unit

SECRET = "hunter2-in-the-exception"  # what no answer may echo

failing = APIRouter(prefix="/test-only")


@failing.get("/crash")
def crash() -> None:
    raise RuntimeError(f"the database password is {SECRET}")


@failing.get("/crash-async")
async def crash_async() -> None:
    raise KeyError(SECRET)


@failing.get("/items/{item_id}")
def item(item_id: int = PathParam(ge=1, le=10)) -> dict[str, int]:
    return {"item_id": item_id}


@failing.get("/half-a-stream")
def half_a_stream() -> StreamingResponse:
    def chunks() -> Iterator[bytes]:
        yield b'{"rows": ['
        raise RuntimeError(SECRET)

    return StreamingResponse(chunks(), media_type="application/json")


class LogLines(logging.Handler):
    """The app's log lines as JSON, formatted when they are logged: with the request id
    of the request being served, as the app's own handler writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def about(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("request_id") == request_id]


@pytest.fixture
def logged() -> Iterator[LogLines]:
    handler = LogLines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def failing_lab(writable_db: Path, tmp_path: Path) -> Iterator[Lab]:
    settings = lab_settings(tmp_path / "lab", writable_db)
    with open_lab(settings, raise_app_exceptions=False, routers=[failing]) as lab:
        yield lab


def _no_trace(text: str) -> None:
    for needle in ("Traceback", 'File "', SECRET, "RuntimeError", "KeyError"):
        assert needle not in text


# --- the envelope, for each kind of error ----------------------------------------------------


def test_a_404_is_the_envelope(lab: Lab) -> None:
    response = lab.client.get("/orders/999")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "message": "no order 999", "details": [],
                  "request_id": response.headers["x-request-id"]},
        "detail": "no order 999",  # FastAPI's key, for the clients that read it
    }  # fmt: skip


def test_a_path_nothing_serves_is_the_envelope_too(lab: Lab) -> None:
    response = lab.client.get("/no/such/path")
    assert response.status_code == 404
    assert error_of(response)["message"] == "Not Found"
    not_allowed = lab.client.delete("/healthz")
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "GET"  # the exception's headers are kept
    assert error_of(not_allowed)["message"] == "Method Not Allowed"


def test_a_422_lists_every_invalid_field_without_its_value(lab: Lab) -> None:
    body = {"user_id": 0, "items": [{"product_id": 1, "quantity": 101}], "password": SECRET}
    response = lab.client.post("/orders", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["details"] == [
        {"loc": ["body", "user_id"], "msg": "Input should be greater than or equal to 1",
         "type": "greater_than_equal"},
        {"loc": ["body", "items", 0, "quantity"], "msg": "Input should be less than or equal "
         "to 100", "type": "less_than_equal"},
    ]  # fmt: skip
    assert error["message"] == (
        "invalid request: body.user_id: Input should be greater than or equal to 1 (and 1 more)"
    )
    assert response.json()["detail"] == error["details"]
    # The values sent are not echoed. The request id is left out of the search: it is
    # hex (start time, pid, counter) and holds "101" now and then.
    echoed = response.text.replace(error["request_id"], "")
    assert "input" not in echoed
    assert "101" not in echoed


def test_a_body_that_is_not_json_is_a_422_where_it_broke(lab: Lab) -> None:
    response = lab.client.post(
        "/orders", content=b'{"user_id": 1,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert error_of(response)["details"] == [
        {"loc": ["body", 14], "msg": "JSON decode error", "type": "json_invalid"}
    ]


@pytest.mark.parametrize("path", ["/test-only/crash", "/test-only/crash-async"])
def test_an_unhandled_exception_is_a_bare_500_and_one_traceback_in_the_log(
    failing_lab: Lab, logged: LogLines, path: str
) -> None:
    response = failing_lab.client.get(path)
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": {"status": 500, "message": "internal server error", "details": [],
                  "request_id": request_id},
        "detail": "internal server error",
    }  # fmt: skip
    _no_trace(response.text)
    lines = logged.about(request_id)
    tracebacks = [line for line in lines if "exc" in line]
    assert len(tracebacks) == 1
    (logged_error,) = tracebacks
    assert logged_error["msg"] == "unhandled exception"
    assert logged_error["level"] == "ERROR"
    assert logged_error["route"] == path
    assert logged_error["exc"].startswith("Traceback (most recent call last)")
    assert SECRET in logged_error["exc"]  # the log has what the client must not see
    # The request's own line (the metrics middleware's) says 500, under the same id.
    assert [line["status"] for line in lines if line["msg"] == "slow or failed request"] == [500]


def test_the_client_s_request_id_is_the_one_answered_and_logged(
    failing_lab: Lab, logged: LogLines
) -> None:
    response = failing_lab.client.get("/test-only/crash", headers={"X-Request-Id": "ticket-37"})
    assert response.headers["x-request-id"] == "ticket-37"
    assert error_of(response)["request_id"] == "ticket-37"
    assert any("exc" in line for line in logged.about("ticket-37"))


def test_every_error_of_a_test_app_carries_no_trace(failing_lab: Lab) -> None:
    for path in ("/test-only/crash", "/test-only/crash-async", "/test-only/items/0",
                 "/test-only/items/x", "/test-only/nothing", "/orders/999"):  # fmt: skip
        response = failing_lab.client.get(path)
        assert response.status_code >= 400, path
        _no_trace(response.text)
        assert error_of(response)["status"] == response.status_code


def test_a_stream_that_fails_half_way_is_cut_not_replaced(
    failing_lab: Lab, logged: LogLines
) -> None:
    """Once the status and part of the body are out, no 500 can replace them: the
    exception goes on to the server, which cuts the connection (the client has a
    truncated body), and the log has the traceback under the request's id."""
    response = failing_lab.client.get("/test-only/half-a-stream")
    assert response.status_code == 200  # what was sent before the failure
    assert response.content == b'{"rows": ['
    lines = logged.about(response.headers["x-request-id"])
    assert [line["msg"] for line in lines if "exc" in line] == ["unhandled exception"]


def test_without_instrumentation_the_envelope_has_no_request_id(
    writable_db: Path, tmp_path: Path
) -> None:
    """The benchmark's bare baseline assigns no request ids: the envelope says so (null)."""
    settings = lab_settings(tmp_path / "lab", writable_db, lab_instrumentation=False)
    with open_lab(settings, raise_app_exceptions=False, routers=[failing]) as lab:
        for path, status in (("/orders/999", 404), ("/test-only/crash", 500)):
            response = lab.client.get(path)
            assert response.status_code == status
            assert response.json()["error"]["request_id"] is None
            assert "x-request-id" not in response.headers


def test_the_schema_documents_the_envelope(lab: Lab) -> None:
    schema = lab.client.get("/openapi.json").json()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    operation = schema["paths"]["/orders/{order_id}"]["get"]
    for status in ("404", "422", "500", "503"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == envelope
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's 422 body
