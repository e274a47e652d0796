"""Ids beyond the database's integer range: a client's mistake, not the server's.

The id columns are INTEGER: PostgreSQL's ends at 2**31 - 1 (a larger value in a
query is an error), SQLite's at 2**63 - 1 (one more overflows the driver). Every
id parameter is bounded to the smaller (target_app/api/params.py), so both are a
422 that names the parameter, before any query.
"""

from __future__ import annotations

from typing import Any

import pytest

from target_app.api.params import ID_MAX
from tests.app.helpers import Lab, error_of

pytestmark = pytest.mark.unit

PG_BEYOND = ID_MAX + 1  # one past PostgreSQL's INTEGER
SQLITE_BEYOND = 2**63  # one past SQLite's INTEGER


def _requests(big: int) -> list[Any]:
    """(method, path, body, where the error is) for every id a client sends.

    Not the routes that need a service the in-process app lacks (the upstream API, the
    model server): their dependency's 503 comes first. Their bounds are in the schema."""
    return [
        ("GET", f"/products/{big}", None, ["path", "product_id"]),
        ("GET", f"/products?after_id={big}", None, ["query", "after_id"]),
        ("GET", f"/products/pages/bookmark?after_id={big * 2}", None, ["query", "after_id"]),
        ("GET", f"/orders/{big}", None, ["path", "order_id"]),
        ("GET", f"/orders/{big}/invoice", None, ["path", "order_id"]),
        ("GET", f"/orders?before_id={big + 1}", None, ["query", "before_id"]),
        ("GET", f"/users/{big}", None, ["path", "user_id"]),
        ("GET", f"/users/{big}/dashboard", None, ["path", "user_id"]),
        ("POST", f"/etl/product-snapshots?limit={big}", None, ["query", "limit"]),
        ("POST", "/orders", {"user_id": big, "items": [{"product_id": 1, "quantity": 1}]},
         ["body", "user_id"]),
        ("POST", "/orders", {"user_id": 1, "items": [{"product_id": big, "quantity": 1}]},
         ["body", "items", 0, "product_id"]),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [*_requests(PG_BEYOND), *_requests(SQLITE_BEYOND)],
)
def test_an_id_out_of_range_is_refused_not_a_500(
    fresh_lab_with_500s: Lab, method: str, path: str, body: Any, where: list[Any]
) -> None:
    response = fresh_lab_with_500s.client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert [d["loc"] for d in error["details"]] == [where]
    assert "less than or equal to" in error["details"][0]["msg"]


def test_the_largest_id_a_column_holds_is_accepted(lab: Lab) -> None:
    """The bound is the column's, not lower: the largest id is looked up (and not there)."""
    assert lab.client.get(f"/products/{ID_MAX}").status_code == 404
    assert lab.client.get(f"/orders/{ID_MAX}").status_code == 404
    assert lab.client.get(f"/users/{ID_MAX}/dashboard").status_code == 404
    newest = lab.client.get("/orders", params={"before_id": ID_MAX + 1, "limit": 1})
    assert newest.status_code == 200
    assert newest.json()["orders"] == lab.client.get("/orders?limit=1").json()["orders"]


def test_the_schema_states_every_bound(lab: Lab) -> None:
    """Every integer a client sends, in a path, a query, a header or a body, has a minimum
    and a maximum in the OpenAPI schema: what a client (or a fuzzer) reads."""
    schema = lab.client.get("/openapi.json").json()
    unbounded = []

    def visit(where: str, node: Any) -> None:
        if isinstance(node, dict):
            low = {"minimum", "exclusiveMinimum"} & set(node)
            high = {"maximum", "exclusiveMaximum"} & set(node)
            if node.get("type") == "integer" and not (low and high):
                unbounded.append(where)
            for key, value in node.items():
                visit(f"{where}.{key}", value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(f"{where}[{i}]", value)

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                visit(f"{method} {path} {parameter['name']}", parameter["schema"])
    # Request bodies, not responses: what the app answers is its own business.
    bodies = {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if name in {"OrderIn", "OrderLine"}
    }
    visit("components", bodies)
    assert bodies, "the order body's models are not in the schema"
    assert unbounded == []
