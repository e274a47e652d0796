"""/etl/product-snapshots: an ETL job run in the request (the etl-in-memory seam's route).

Both variants write with PostgreSQL's COPY; on SQLite only the validation of
the request can run, and the job is refused with a 503 that says so. The job
itself is tested against PostgreSQL in tests/scenarios/test_etl_in_memory.py.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.app.helpers import Lab, error_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "all"}, "limit"),
        ({"fail_at": 0}, "fail_at"),
        ({"fail_at": 1}, "fail_at"),
        ({"fail_at": 1.5}, "fail_at"),
    ],
)
def test_a_job_refuses_bad_parameters(lab: Lab, params: dict[str, object], where: str) -> None:
    response = lab.client.post("/etl/product-snapshots", params=params)
    assert response.status_code == 422
    assert error_of(response)["details"][0]["loc"] == ["query", where]


def test_a_job_on_sqlite_says_it_needs_postgres(fresh_lab: Lab) -> None:
    """As the routes that need Redis or the upstream API do: a 503 that says what to start,
    before any job row is written."""
    response = fresh_lab.client.post("/etl/product-snapshots", params={"limit": 10})
    assert response.status_code == 503
    message = error_of(response)["message"]
    assert "PostgreSQL's COPY" in message
    assert "DATABASE_URL is sqlite" in message
    assert "`make up`" in message
    assert "retry-after" not in response.headers  # waiting does not help: configuration does
    with sqlite3.connect(fresh_lab.settings.database_url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT count(*) FROM etl_jobs").fetchone() == (0,)


# --- /etl/jobs: the job API (the long-task-inline seam's route) ------------------------


def test_queueing_a_job_without_redis_says_what_to_start(fresh_lab: Lab) -> None:
    """The fixed variant queues the job on Redis: without REDIS_URL, a 503 that says so,
    and no job row that nothing would ever run."""
    response = fresh_lab.client.post("/etl/jobs", params={"limit": 10})
    assert response.status_code == 503
    assert "needs Redis" in error_of(response)["message"]
    with sqlite3.connect(fresh_lab.settings.database_url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT count(*) FROM etl_jobs").fetchone() == (0,)


def test_a_job_run_in_the_request_on_sqlite_says_it_needs_postgres(fresh_lab: Lab) -> None:
    fresh_lab.enable("long-task-inline")
    response = fresh_lab.client.post("/etl/jobs", params={"limit": 10})
    assert response.status_code == 503
    assert "PostgreSQL's COPY" in error_of(response)["message"]


@pytest.mark.parametrize("path", ["/etl/jobs/0", "/etl/jobs/x", "/etl/jobs/0/events"])
def test_a_job_id_is_validated(lab: Lab, path: str) -> None:
    assert lab.client.get(path).status_code == 422


def test_a_job_is_followed_by_its_status_url(fresh_lab: Lab) -> None:
    url = fresh_lab.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(url) as db:
        db.execute(
            "INSERT INTO etl_jobs (id, name, status, until_product_id, rows_expected,"
            " last_product_id, attempts) VALUES (7, 'product-snapshots', 'queued', 0, 0, 0, 0)"
        )
    body = fresh_lab.client.get("/etl/jobs/7").json()
    assert body["status"] == "queued"
    assert body["rows_expected"] is None  # its first run fixes its scope
    assert body["events_url"] == "/etl/jobs/7/events"
    assert fresh_lab.client.get("/etl/jobs/8").status_code == 404
    # Its events need Redis, which the in-process app has not: 503 once the job exists.
    assert fresh_lab.client.get("/etl/jobs/8/events").status_code == 404
    events = fresh_lab.client.get("/etl/jobs/7/events")
    assert events.status_code == 503
    assert "REDIS_URL" in error_of(events)["message"]
