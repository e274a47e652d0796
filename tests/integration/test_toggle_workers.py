"""A toggle written through the admin API reaches all 4 gunicorn workers within 1 s."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_app

pytestmark = pytest.mark.integration

WORKERS = 4


def _variants_by_worker(url: str, auth: dict[str, str], rounds: int = 40) -> dict[int, str]:
    seen: dict[int, str] = {}
    # A new connection per request, so the kernel spreads them over the workers.
    for _ in range(rounds):
        with httpx.Client(headers=auth) as client:
            data = client.get(f"{url}/_lab/faults").json()
        leak = next(f for f in data["faults"] if f["slug"] == "memory-leak")
        seen[data["pid"]] = leak["variant_here"]
    return seen


def test_toggle_reaches_every_worker_within_one_second(tmp_path: Path, seeded_db: str) -> None:
    app = start_app(tmp_path, seeded_db, workers=WORKERS)
    try:
        deadline = time.monotonic() + 20
        seen: dict[int, str] = {}
        while len(seen) < WORKERS and time.monotonic() < deadline:
            seen.update(_variants_by_worker(app.url, app.auth))
        assert len(seen) == WORKERS, f"only saw workers {sorted(seen)}"
        assert set(seen.values()) == {"fixed"}

        response = httpx.put(f"{app.url}/_lab/faults/memory-leak", headers=app.auth)
        assert response.status_code == 200
        switched = time.monotonic()
        time.sleep(1.0)
        late: dict[int, str] = {}
        while len(late) < WORKERS and time.monotonic() - switched < 10:
            late.update(_variants_by_worker(app.url, app.auth, rounds=20))
        # Every worker answering 1 s after the switch already serves the faulty variant.
        assert len(late) == WORKERS
        assert set(late.values()) == {"faulty"}, late
    finally:
        app.server.stop()
