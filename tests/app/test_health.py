"""Liveness, readiness, /metrics, the per-request headers, and the db-down seam."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.app.helpers import Lab, error_of, lab_settings, open_lab

pytestmark = pytest.mark.unit


def test_healthz_answers_with_this_process(lab: Lab) -> None:
    response = lab.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "pid": os.getpid()}


def test_readyz_asks_the_database(lab: Lab) -> None:
    response = lab.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "pid": os.getpid()}
    # The middleware's split of the request's time: one statement went to the database.
    assert "db;dur=" in response.headers["server-timing"]
    assert 'desc="1 queries"' in response.headers["server-timing"]


def test_every_answer_carries_a_request_id_and_server_timing(lab: Lab) -> None:
    given = lab.client.get("/healthz", headers={"X-Request-Id": "trace-me-42"})
    assert given.headers["x-request-id"] == "trace-me-42"
    made_up = lab.client.get("/healthz")
    assert made_up.headers["x-request-id"] not in ("", "trace-me-42")
    for part in ("db;dur=", "upstream;dur=", "app;dur=", "total;dur="):
        assert part in made_up.headers["server-timing"]
    too_long = lab.client.get("/healthz", headers={"X-Request-Id": "x" * 129})
    assert too_long.headers["x-request-id"] != "x" * 129  # not echoed: a new id instead


def test_metrics_expose_the_requests_just_served(lab: Lab) -> None:
    assert lab.client.get("/healthz").status_code == 200
    response = lab.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="GET",route="/healthz",status="200"}' in text
    for name in ("http_request_duration_seconds", "db_queries_per_request", "lab_fault_active"):
        assert name in text


def test_the_lifespan_ran(lab: Lab) -> None:
    """What only the lifespan's tasks publish: the fault gauges and this worker's RSS."""
    text = lab.client.get("/metrics").text
    assert 'lab_fault_active{scenario="memory-leak"} 0.0' in text
    rss = next(
        line for line in text.splitlines() if line.startswith("worker_resident_memory_bytes ")
    )
    assert float(rss.split()[1]) > 10 * 2**20


# --- db-down: how a request whose database is unreachable is answered ----------------


@pytest.fixture
def lab_without_database(tmp_path: Path) -> Iterator[Lab]:
    """DATABASE_URL names a directory: every connection fails with OperationalError,
    as when the database's link is down. Unhandled exceptions come back as 500s."""
    unopenable = tmp_path / "not-a-database"
    unopenable.mkdir()
    settings = lab_settings(tmp_path / "lab", unopenable)
    with open_lab(settings, raise_app_exceptions=False) as lab:
        yield lab


class Records(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture
def logged() -> Iterator[list[logging.LogRecord]]:
    """What the app logs (at WARNING and above) during the test."""
    records: list[logging.LogRecord] = []
    handler = Records(records)
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)


def test_db_down_fixed_answers_503_with_retry_after(lab_without_database: Lab) -> None:
    lab = lab_without_database
    response = lab.client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"  # the fixed variant's default
    assert error_of(response)["message"] == "the database is unreachable; retry shortly"
    products = lab.client.get("/products/1")
    assert products.status_code == 503
    assert "unable to open" not in products.text  # the driver's words stay in the log
    # A route that needs no database keeps answering.
    assert lab.client.get("/healthz").status_code == 200


def test_db_down_fixed_logs_one_line_per_outage_window(
    lab_without_database: Lab, logged: list[logging.LogRecord]
) -> None:
    for _ in range(5):
        assert lab_without_database.client.get("/readyz").status_code == 503
    outage = [r for r in logged if r.getMessage().startswith("database unreachable")]
    assert len(outage) == 1  # within one Retry-After window
    assert not [r for r in logged if r.exc_info]  # no traceback


def test_db_down_faulty_lets_it_crash(
    lab_without_database: Lab, logged: list[logging.LogRecord]
) -> None:
    """The variants differ on purpose here: the 500 of an exception nobody handled (in the
    app's envelope, without the exception's text) and a traceback per request."""
    lab = lab_without_database
    with lab.faulty("db-down"):
        responses = [lab.client.get("/readyz") for _ in range(3)]
        assert lab.client.get("/healthz").status_code == 200
    for response in responses:
        assert response.status_code == 500
        assert "retry-after" not in response.headers
        assert error_of(response)["message"] == "internal server error"
        assert "OperationalError" not in response.text
    tracebacks = [r for r in logged if r.exc_info]
    assert len(tracebacks) == 3
    assert all(r.getMessage() == "unhandled exception" for r in tracebacks)
    assert all(isinstance(r.exc_info[1], OperationalError) for r in tracebacks if r.exc_info)
    assert lab.client.get("/readyz").status_code == 503
