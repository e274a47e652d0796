"""Ids beyond the database's integer range: a client's mistake, not the server's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.helpers import Lab

pytestmark = pytest.mark.unit

BIG = 2**63  # one past SQLite's INTEGER (PostgreSQL's INTEGER columns end at 2**31 - 1)


@pytest.mark.xfail(
    strict=True,
    reason="an id past the column's integer range reaches the database and is a 500 "
    f"(OverflowError on SQLite), e.g. GET /products/{BIG}: the routes declare ids as "
    "unbounded ints",
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/products/{BIG}", None),
        ("GET", f"/products?after_id={BIG}", None),
        ("GET", f"/products/pages/bookmark?after_id={BIG * 2}", None),
        ("GET", f"/orders/{BIG}", None),
        ("GET", f"/orders/{BIG}/invoice", None),
        ("GET", f"/orders?before_id={BIG}", None),
        ("GET", f"/users/{BIG}", None),
        ("GET", f"/users/{BIG}/dashboard", None),
        ("POST", "/orders", {"user_id": BIG, "items": [{"product_id": 1, "quantity": 1}]}),
        ("POST", "/orders", {"user_id": 1, "items": [{"product_id": BIG, "quantity": 1}]}),
    ],
)
def test_an_id_out_of_range_is_refused_not_a_500(
    fresh_lab_with_500s: Lab, method: str, path: str, body: Any
) -> None:
    response = fresh_lab_with_500s.client.request(method, path, json=body)
    assert response.status_code in (404, 422), response.text
