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
