"""etl-in-memory: the whole table in memory and a retry from zero, vs keyset chunks
committed with their checkpoint and a retry that resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.scenarios.contract import direct_database_url, prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

ROWS = 1_000_000  # the products `lab up` seeds (tests/conftest.py SERVICES_SEED_ROWS)


def test_etl_in_memory_streams_and_resumes_from_its_checkpoint(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    # The peak shows within seconds; 40 s lets a faulty job (about 18 s alone, nearer
    # 30 s on 2 busy cores) finish, so that its duplicates are counted.
    faulty, fixed = prove("etl-in-memory", tmp_path, env, duration="40s", users=1)
    # Memory: the whole table (hundreds of MB) against one chunk (tens at most).
    assert faulty["peak_rss_growth_mb"] >= 5 * fixed["peak_rss_growth_mb"]
    assert fixed["peak_rss_growth_mb"] < 60
    # Partial failure: every finished faulty job wrote the first half twice; the
    # fixed ones resumed from their checkpoint and hold each product once.
    assert faulty["etl_jobs_completed"] >= 1 and fixed["etl_jobs_completed"] >= 1
    assert faulty["etl_duplicate_rows"] >= faulty["etl_jobs_completed"] * ROWS // 2
    assert fixed["etl_duplicate_rows"] == 0
    assert faulty["error_rate"] == 1.0  # the workload fails a job whose target has duplicates
    assert fixed["error_rate"] == 0


def _run_job(app_url: str, rows: int) -> dict[str, Any]:
    response = httpx.post(
        f"{app_url}/etl/product-snapshots", params={"limit": rows, "fail_at": 0.5}, timeout=120
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_retry_resumes_after_the_last_committed_chunk(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    from faults.etl_in_memory import CheckpointedEtl, InMemoryEtl, prepare
    from tests.conftest import start_app

    lab_services("postgres")
    url = direct_database_url()
    prepare("fixed", url)  # schema at head, ETL tables empty
    rows, half = 45_000, 22_500
    # The failure hits the chunk that crosses half-way, before its commit: the
    # chunks before it are in (the faulty variant commits batches of the same size).
    assert CheckpointedEtl.CHUNK == InMemoryEtl.BATCH
    committed = half // CheckpointedEtl.CHUNK * CheckpointedEtl.CHUNK

    (tmp_path / "fixed").mkdir()
    (tmp_path / "faulty").mkdir()
    app = start_app(tmp_path / "fixed", url)
    try:
        job = _run_job(app.url, rows)
    finally:
        app.server.stop()
    first, retry = job["attempts"]
    assert first["error"] and first["loaded"] == committed  # the chunk in flight rolled back
    assert retry["error"] is None
    # Product ids are 1..N: the checkpoint (a product id) is also a row count.
    assert retry["resumed_from"] == committed
    assert retry["extracted"] == rows - committed  # from the checkpoint, not from zero
    assert job["rows_in_target"] == job["distinct_products"] == rows
    assert job["duplicate_rows"] == 0
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            status, checkpoint, attempts = conn.execute(
                text("SELECT status, last_product_id, attempts FROM etl_jobs WHERE id = :id"),
                {"id": job["job_id"]},
            ).one()
            assert (status, checkpoint, attempts) == ("done", rows, 2)

        app = start_app(tmp_path / "faulty", url, FAULTS="etl-in-memory")
        try:
            job = _run_job(app.url, rows)
        finally:
            app.server.stop()
        first, retry = job["attempts"]
        assert first["loaded"] == committed and retry["resumed_from"] == 0
        assert retry["extracted"] == rows  # from zero
        assert job["rows_in_target"] == rows + committed
        assert job["duplicate_rows"] == committed
        with engine.connect() as conn:
            duplicated = conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT product_id FROM product_snapshots "
                    "WHERE job_id = :id GROUP BY product_id HAVING count(*) > 1) AS d"
                ),
                {"id": job["job_id"]},
            )
            assert duplicated == committed
    finally:
        engine.dispose()
