"""Every route of the app was requested by tests/app, with its happy path and main errors.

Runs last (tests/app/conftest.py orders it), from what `Recording` saw: the route
that answered each request of the session and its status. It skips unless the
whole of tests/app ran, since a part of it cannot have requested everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts

from tests.app.conftest import RUNS_ALL_OF_TESTS_APP
from tests.app.helpers import ROUTE_LOG, Lab

pytestmark = pytest.mark.unit

# (method, route) -> the statuses tests/app must have seen it answer. 503: a route whose
# happy path needs Redis or the upstream API, which the in-process app does not have.
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("GET", "/openapi.json"): {200},
    ("GET", "/docs"): {200},
    ("GET", "/docs/oauth2-redirect"): {200},
    ("GET", "/redoc"): {200},
    ("GET", "/healthz"): {200},
    ("GET", "/readyz"): {200, 500, 503},
    ("GET", "/metrics"): {200},
    ("GET", "/products"): {200, 422},
    ("GET", "/products/pages"): {200, 400, 422},
    ("GET", "/products/pages/bookmark"): {200, 422},
    ("GET", "/products/search"): {200, 422},
    ("GET", "/products/{product_id}"): {200, 404, 422},
    ("GET", "/products/{product_id}/availability"): {503},
    ("GET", "/orders"): {200, 422},
    ("POST", "/orders"): {201, 404, 422},
    # 201 and 409 need the inventory service: tests/scenarios/test_microservice_cascade.py.
    ("POST", "/orders/placements"): {202, 404, 422, 502, 503},
    ("GET", "/orders/{order_id}"): {200, 404, 422},
    ("POST", "/orders/{order_id}/pay"): {503},
    # test_payments.py runs it against the fake provider in process.
    ("GET", "/orders/{order_id}/payment"): {200, 202, 404, 422, 503},
    ("GET", "/orders/{order_id}/invoice"): {200, 404, 422},
    ("POST", "/orders/{order_id}/status"): {200, 404, 422, 503},
    ("GET", "/users/{user_id}"): {200, 404, 422},
    ("GET", "/users/{user_id}/dashboard"): {200, 404, 422},
    ("POST", "/sessions"): {201, 401, 422, 503},
    ("GET", "/sessions/me"): {200, 401, 503},
    ("DELETE", "/sessions"): {204},
    ("GET", "/catalog/stats"): {503},
    ("GET", "/catalog/bestsellers"): {200},
    ("GET", "/recommendations/{user_id}"): {200, 422},
    ("GET", "/quotes/{product_id}"): {200, 422},
    ("GET", "/pricing/bands"): {200, 404, 422},
    ("GET", "/reports/sales"): {200},
    ("GET", "/export/orders"): {200},
    ("POST", "/imports/products"): {201, 422},
    ("PUT", "/uploads/{name}"): {201, 413, 422},
    ("POST", "/uploads"): {201, 413, 422},
    ("HEAD", "/uploads/{name}"): {200, 404},
    ("PATCH", "/uploads/{name}"): {204, 404, 409, 413, 422},
    ("DELETE", "/uploads/{name}"): {204, 404},
    # On SQLite a job cannot run: a 503 that names PostgreSQL (test_etl.py).
    ("POST", "/etl/product-snapshots"): {422, 503},
    # The job API: queueing needs Redis, running needs PostgreSQL (test_etl.py); the
    # queue itself is proven in tests/scenarios/test_long_task_inline.py.
    ("POST", "/etl/jobs"): {503},
    ("GET", "/etl/jobs/{job_id}"): {200, 404, 422},
    ("GET", "/etl/jobs/{job_id}/events"): {404, 422, 503},
    # In process the fixed receiver needs PostgreSQL and Redis (503, test_webhooks.py);
    # its queue and consumer are proven in tests/scenarios/test_sync_webhook.py.
    ("POST", "/webhooks/payments"): {200, 422, 503},
    # The stream itself is driven over ASGI (test_logs.py); the rest through the client.
    ("GET", "/logs/live"): {200, 401, 403, 422},
    ("GET", "/_lab/faults"): {200, 401, 403},
    ("PUT", "/_lab/faults/{slug}"): {200, 401, 403, 404, 409, 422},
    ("DELETE", "/_lab/faults/{slug}"): {200, 401, 403, 404},
    ("POST", "/_lab/reset"): {200, 401, 403},
}


def app_routes(lab: Lab) -> set[tuple[str, str]]:
    """(method, path) of every route of the app; HEAD only where it is declared alone."""
    routes: set[tuple[str, str]] = set()
    for route in iter_route_contexts(lab.app.routes):
        assert route.path is not None, route
        methods = set(route.methods or ())
        if {"GET", "HEAD"} <= methods:
            methods.discard("HEAD")  # added to every GET by Starlette
        routes.update((method, route.path) for method in methods)
    return routes


def test_the_expectations_name_every_route_of_the_app(lab: Lab) -> None:
    assert app_routes(lab) == set(EXPECTED)


def test_every_route_was_requested_with_its_statuses(
    lab: Lab, request: pytest.FixtureRequest
) -> None:
    if not request.config.stash.get(RUNS_ALL_OF_TESTS_APP, False):
        pytest.skip(f"only meaningful when the whole of {Path(__file__).parent} runs")
    missing = {
        f"{method} {path}": sorted(wanted - ROUTE_LOG.statuses.get((method, path), set()))
        for (method, path), wanted in EXPECTED.items()
        if not wanted <= ROUTE_LOG.statuses.get((method, path), set())
    }
    assert missing == {}, "routes not requested with these statuses"
