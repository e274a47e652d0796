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


TWICE = product(new_sku())


@pytest.mark.parametrize(
    ("rows", "bad_index", "reason"),
    [
        pytest.param(
            [product("SKU-00000001"), product(new_sku())], 0,
            "sku SKU-00000001 is already taken", id="taken-sku",
        ),
        pytest.param(
            [TWICE, dict(TWICE)], 1,
            f"sku {TWICE['sku']} appears twice in the batch (first at index 0)",
            id="sku-twice-in-the-batch",
        ),
        pytest.param(
            [product(new_sku(), price="NaN"), product(new_sku())], 0,
            "price must be a finite number, got NaN", id="price-nan",
        ),
        pytest.param(
            [product(new_sku(), price="Infinity"), product(new_sku())], 0,
            "price must be a finite number, got Infinity", id="price-infinity",
        ),
        pytest.param(
            [product(new_sku(), price="1e400"), product(new_sku())], 0,
            "price must be below 100000000, got 1E+400", id="price-too-large",
        ),
        pytest.param(
            [product(new_sku(), price="99999999.995"), product(new_sku())], 0,
            "price must be below 100000000, got 99999999.995", id="price-rounds-too-large",
        ),
        pytest.param(
            [product(new_sku(), stock=2**63), product(new_sku())], 0,
            f"stock must be at most {2**31 - 1}, got {2**63}", id="stock-too-large",
        ),
        pytest.param(
            [product(new_sku(), stock=2.5), product(new_sku())], 0,
            "stock must be a whole number, got 2.5", id="stock-not-whole",
        ),
        pytest.param(
            [product(new_sku(), price=True), product(new_sku())], 0,
            "price must be a number, got True", id="price-boolean",
        ),
        pytest.param(
            [product(new_sku(), price="12,50"), product(new_sku())], 0,
            "price must be a number, got '12,50'", id="price-unreadable",
        ),
    ],
)  # fmt: skip
def test_a_row_the_table_cannot_hold_is_rejected(
    fresh_lab_with_500s: Lab, rows: list[dict[str, Any]], bad_index: int, reason: str
) -> None:
    """The fixed variant's promise: every bad row reported with its index, none of them
    stopping the good ones, and none of them a 500 or a value the table cannot hold."""
    response = fresh_lab_with_500s.client.post("/imports/products", json=rows)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["inserted"] == 1
    assert body["rejected"] == [
        {"index": bad_index, "sku": rows[bad_index]["sku"], "reason": reason}
    ]
    good = rows[1 - bad_index]
    assert [item["sku"] for item in found(fresh_lab_with_500s, good["name"])] == [good["sku"]]


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        pytest.param([product("SKU-00000001")], "sku SKU-00000001 is already taken", id="taken"),
        pytest.param([TWICE, dict(TWICE)], f"sku {TWICE['sku']} is already taken", id="twice"),
        pytest.param([product(new_sku(), price="NaN")], "price must be a finite number, got NaN",
                     id="nan"),
    ],
)  # fmt: skip
def test_the_faulty_import_stops_at_such_a_row_with_a_422(
    fresh_lab_with_500s: Lab, rows: list[dict[str, Any]], reason: str
) -> None:
    """The faulty variant's behaviour on a bad row is its own (it stops there, the rows
    before it committed), but it is a 422 that says why, never a 500."""
    with fresh_lab_with_500s.faulty("row-by-row-insert"):
        response = fresh_lab_with_500s.client.post("/imports/products", json=rows)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"import stopped: {reason}"
