"""check_row and check_batch: the table's limits, at their edges (pure logic)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from target_app.imports import MAX_STOCK, RowError, check_batch, check_row

pytestmark = pytest.mark.unit


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sku": "I1", "name": "n", "category": "c", "price": "1", "stock": 0}
    return base | overrides


@pytest.mark.parametrize(
    ("price", "stored"),
    [("99999999.99", Decimal("99999999.99")), ("0.005", Decimal("0.01")), (9.99, Decimal("9.99")),
     ("12.345", Decimal("12.35")), (3, Decimal("3.00"))],
)  # fmt: skip
def test_prices_numeric_10_2_holds_are_taken_rounded_to_the_cent(
    price: Any, stored: Decimal
) -> None:
    assert check_row(row(price=price))["price"] == stored


@pytest.mark.parametrize(
    "price", ["NaN", "sNaN", "-NaN", "Infinity", "-Infinity", "1e400", "100000000",
              "99999999.995", "0", "0.004", "-1", "", "1,5", None, True, [1]],
)  # fmt: skip
def test_prices_the_table_cannot_hold_are_row_errors(price: Any) -> None:
    with pytest.raises(RowError):
        check_row(row(price=price))


@pytest.mark.parametrize("stock", [0, MAX_STOCK, "7", 4.0])
def test_stock_within_an_integer_column_is_taken(stock: Any) -> None:
    assert check_row(row(stock=stock))["stock"] == int(stock)


@pytest.mark.parametrize(
    "stock", [MAX_STOCK + 1, 2**63, -1, 2.5, float("nan"), float("inf"), "x", None, False]
)
def test_stock_outside_an_integer_column_is_a_row_error(stock: Any) -> None:
    with pytest.raises(RowError):
        check_row(row(stock=stock))


def test_a_sku_seen_earlier_in_the_batch_is_rejected_and_the_first_kept() -> None:
    rows = [row(sku="A"), row(sku="B"), row(sku="A"), row(sku="C", price="NaN"), row(sku="A")]
    good, rejected = check_batch(rows)
    assert [(i, r["sku"]) for i, r in good] == [(0, "A"), (1, "B")]
    assert [(r["index"], r["sku"]) for r in rejected] == [(2, "A"), (3, "C"), (4, "A")]
    assert rejected[0]["reason"] == "sku A appears twice in the batch (first at index 0)"


def test_a_row_that_is_not_an_object_is_a_row_error_not_a_crash() -> None:
    good, rejected = check_batch([row(), {"sku": "x"}])
    assert len(good) == 1
    assert rejected[0]["index"] == 1
    assert rejected[0]["reason"].startswith("unreadable row: KeyError(")


@pytest.mark.parametrize("field", ["sku", "name", "category", "description"])
def test_a_nul_character_is_a_row_error(field: str) -> None:
    with pytest.raises(RowError, match="NUL"):
        check_row(row(**{field: "a\x00b"}))
