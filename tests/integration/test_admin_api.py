"""The /_lab admin API against a real app process: refusals are clear, serving goes on."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningApp, start_app

pytestmark = pytest.mark.integration


def _still_serving(app: RunningApp) -> None:
    response = httpx.get(f"{app.url}/products/1", headers={"X-Session-Id": "check"})
    assert response.status_code == 200
    assert response.json()["id"] == 1


def test_missing_and_wrong_token(app_process: RunningApp) -> None:
    url = f"{app_process.url}/_lab/faults"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]
    wrong = httpx.put(f"{url}/memory-leak", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert "wrong lab admin token" in wrong.json()["detail"]
    assert (
        not app_process.state_file.exists()
        or "memory-leak" not in app_process.state_file.read_text()
    )
    _still_serving(app_process)


def test_unknown_slug_lists_the_valid_ones(app_process: RunningApp) -> None:
    response = httpx.put(f"{app_process.url}/_lab/faults/memory-leek", headers=app_process.auth)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "unknown scenario 'memory-leek'" in detail["message"]
    assert "memory-leak" in detail["valid"]
    _still_serving(app_process)


def test_a_deployment_scenario_is_not_a_toggle(app_process: RunningApp) -> None:
    response = httpx.put(f"{app_process.url}/_lab/faults/single-worker", headers=app_process.auth)
    assert response.status_code == 409
    assert "lab run single-worker --fixed" in response.json()["detail"]["message"]
    assert (
        not app_process.state_file.exists()
        or "single-worker" not in app_process.state_file.read_text()
    )
    _still_serving(app_process)


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"related": 999}, "related"), ({"ttl_seconds": -1}, "ttl_seconds"), ({"bogus": 1}, "bogus")],
)
def test_bad_parameter_names_it_and_the_accepted_range(
    app_process: RunningApp, body: dict[str, object], needle: str
) -> None:
    response = httpx.put(
        f"{app_process.url}/_lab/faults/memory-leak", json=body, headers=app_process.auth
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert needle in detail["message"]
    assert "related" in detail["valid"]  # the accepted parameters are listed
    _still_serving(app_process)


def test_enable_disable_reset_round_trip(app_process: RunningApp) -> None:
    base, auth = app_process.url, app_process.auth
    on = httpx.put(f"{base}/_lab/faults/memory-leak", json={"related": 5}, headers=auth)
    assert on.status_code == 200 and on.json()["params"]["related"] == 5
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        listing = httpx.get(f"{base}/_lab/faults", headers=auth).json()
        leak = next(f for f in listing["faults"] if f["slug"] == "memory-leak")
        if leak["variant_here"] == "faulty":
            break
        time.sleep(0.05)
    assert leak["active"] and leak["variant_here"] == "faulty"
    page = httpx.get(f"{base}/products/2", headers={"X-Session-Id": "rt"}).json()
    assert len(page["related"]) == 5  # the parameter reached the seam
    off = httpx.delete(f"{base}/_lab/faults/memory-leak", headers=auth)
    assert off.json() == {"slug": "memory-leak", "active": False, "was_active": True}
    httpx.put(f"{base}/_lab/faults/memory-leak", headers=auth)
    reset = httpx.post(f"{base}/_lab/reset", headers=auth)
    assert reset.json()["reset"] == ["memory-leak"]
    _still_serving(app_process)


def test_production_refuses_every_toggle(tmp_path: Path, seeded_db: str) -> None:
    app = start_app(tmp_path, seeded_db, LAB_ENV="production", CURSOR_SECRET="s3cret-from-vault")
    try:
        response = httpx.put(f"{app.url}/_lab/faults/memory-leak", headers=app.auth)
        assert response.status_code == 403
        assert "LAB_ENV=production" in response.json()["detail"]
        # Even a hand-written toggle file cannot switch a fault on in production.
        app.state_file.write_text('{"active": {"memory-leak": {"params": {}}}}')
        time.sleep(0.5)
        listing = httpx.get(f"{app.url}/_lab/faults", headers=app.auth).json()
        leak = next(f for f in listing["faults"] if f["slug"] == "memory-leak")
        assert leak["variant_here"] == "fixed"
        _still_serving(app)
    finally:
        app.server.stop()


def test_admin_api_absent_unless_the_lab_enables_it(tmp_path: Path, seeded_db: str) -> None:
    app = start_app(tmp_path, seeded_db, LAB_ADMIN_ENABLED="false")
    try:
        assert httpx.get(f"{app.url}/_lab/faults", headers=app.auth).status_code == 404
    finally:
        app.server.stop()
