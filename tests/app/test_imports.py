"""/imports/products: a bulk import (the row-by-row-insert seam's route), on a fresh database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.app.helpers import Lab

pytestmark = pytest.mark.unit


def product(sku: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sku": sku, "name": f"Imported {sku}", "category": "books", "price": "12.50", "stock": 3,
    }  # fmt: skip
    row.update(overrides)
    return row


def new_sku() -> str:
    return f"I{uuid.uuid4().hex[:12]}"  # imported SKUs start with "I" (row_by_row_insert.py)


def found(lab: Lab, name: str) -> list[dict[str, Any]]:
    response = lab.client.get("/products/search", params={"name": name})
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_an_import_inserts_every_row(fresh_lab: Lab) -> None:
    rows = [product(new_sku()) for _ in range(3)]
    response = fresh_lab.client.post("/imports/products", json=rows)
    assert response.status_code == 201, response.text
    assert response.json() == {"inserted": 3, "rejected": []}
    for row in rows:
        (item,) = found(fresh_lab, row["name"])
        assert item["sku"] == row["sku"]
        assert item["price"] == "12.50"


def test_bad_rows_are_reported_and_the_good_ones_kept(fresh_lab: Lab) -> None:
    good = [product(new_sku()), product(new_sku())]
    bad_price = product(new_sku(), price="-1")
    no_stock = {k: v for k, v in product(new_sku()).items() if k != "stock"}
    bad_stock = product(new_sku(), stock=-2)
    long_sku = product("I" + "x" * 40)
    rows = [good[0], bad_price, no_stock, good[1], bad_stock, long_sku]
    response = fresh_lab.client.post("/imports/products", json=rows)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["inserted"] == 2
    rejected = body["rejected"]
    assert [r["index"] for r in rejected] == [1, 2, 4, 5]
    assert [r["sku"] for r in rejected] == [rows[i]["sku"] for i in (1, 2, 4, 5)]
    assert rejected[0]["reason"] == "price must be positive, got -1"
    assert rejected[1]["reason"].startswith("unreadable row: KeyError('stock')")
    assert rejected[2]["reason"] == "stock must be >= 0, got -2"
    assert rejected[3]["reason"] == "sku must be 1-32 characters"
    assert [len(found(fresh_lab, row["name"])) for row in rows] == [1, 0, 0, 1, 0, 0]


@pytest.mark.parametrize(
    "body", [{"sku": "I1"}, "rows", [1, 2], None], ids=["object", "string", "numbers", "none"]
)
def test_an_import_is_a_list_of_objects(lab: Lab, body: Any) -> None:
    response = lab.client.post("/imports/products", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def _cannot_hold(rows: list[dict[str, Any]], bad_index: int, reason: str, id: str) -> Any:
    return pytest.param(rows, bad_index, marks=pytest.mark.xfail(strict=True, reason=reason), id=id)


TWICE = product(new_sku())


@pytest.mark.parametrize(
    ("rows", "bad_index"),
    [
        _cannot_hold(
            [product("SKU-00000001"), product(new_sku())], 0,
            "a SKU already in the table is a 500 (IntegrityError)", "taken-sku",
        ),
        _cannot_hold(
            [TWICE, dict(TWICE)], 1,
            "a SKU twice in one batch is a 500 (IntegrityError)", "sku-twice-in-the-batch",
        ),
        _cannot_hold(
            [product(new_sku(), price="NaN"), product(new_sku())], 0,
            "price 'NaN' is a 500 (InvalidOperation: comparing NaN)", "price-nan",
        ),
        _cannot_hold(
            [product(new_sku(), price="Infinity"), product(new_sku())], 0,
            "price 'Infinity' is accepted and stored: NUMERIC(10,2) cannot hold it",
            "price-infinity",
        ),
        _cannot_hold(
            [product(new_sku(), price="1e400"), product(new_sku())], 0,
            "price '1e400' is accepted and stored: NUMERIC(10,2) cannot hold it",
            "price-too-large",
        ),
        _cannot_hold(
            [product(new_sku(), stock=2**63), product(new_sku())], 0,
            "stock 2**63 is a 500 (OverflowError)", "stock-too-large",
        ),
    ],
)  # fmt: skip
def test_a_row_the_table_cannot_hold_is_rejected(
    fresh_lab_with_500s: Lab, rows: list[dict[str, Any]], bad_index: int
) -> None:
    """The fixed variant's promise: every bad row reported with its index, none of them
    stopping the good ones. Each of these batches is a 500, or stores the bad row, today."""
    response = fresh_lab_with_500s.client.post("/imports/products", json=rows)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["inserted"] == 1
    assert [r["index"] for r in body["rejected"]] == [bad_index]
