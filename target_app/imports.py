"""Bulk imports of products: what the table takes, why it refuses a row, what is counted.

`POST /imports/products` answers a RowError with 422, and both variants of the
row-by-row-insert seam (faults/row_by_row_insert.py) validate each row with
`check_row` and count the rows with `count_rows`, so they live here, not in the
scenario. `check_batch` adds what one row cannot tell: a SKU that appears twice.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from target_app import metrics

__all__ = [
    "MAX_PRICE",
    "MAX_STOCK",
    "RowError",
    "check_batch",
    "check_row",
    "count_rows",
    "rejection",
    "taken",
]

CENT = Decimal("0.01")
# products.price is NUMERIC(10, 2): at most 8 digits before the point.
MAX_PRICE = Decimal(10**8) - CENT
# products.stock is an INTEGER column: a 32-bit signed integer.
MAX_STOCK = 2**31 - 1


class RowError(ValueError):
    pass


def _price(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise RowError(f"price must be a number, got {value!r}")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise RowError(f"price must be a number, got {str(value)[:40]!r}") from None
    if not price.is_finite():
        raise RowError(f"price must be a finite number, got {price}")
    if price <= 0:
        raise RowError(f"price must be positive, got {price}")
    if price.adjusted() >= 8:  # at least 10**8, checked before rounding: 1e400 cannot round
        raise RowError(f"price must be below 100000000, got {price}")
    cents = price.quantize(CENT, rounding=ROUND_HALF_UP)  # as NUMERIC(10, 2) rounds it
    if cents > MAX_PRICE:
        raise RowError(f"price must be below 100000000, got {price}")
    if cents <= 0:
        raise RowError(f"price must be at least 0.01, got {price}")
    return cents


def _stock(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise RowError(f"stock must be a whole number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise RowError(f"stock must be a whole number, got {value!r}")
    try:
        stock = int(value)
    except (TypeError, ValueError):
        raise RowError(f"stock must be a whole number, got {str(value)[:40]!r}") from None
    if stock < 0:
        raise RowError(f"stock must be >= 0, got {stock}")
    if stock > MAX_STOCK:
        raise RowError(f"stock must be at most {MAX_STOCK}, got {stock}")
    return stock


def check_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the table takes it, or RowError saying what is wrong with it."""
    try:
        raw_price, raw_stock = row["price"], row["stock"]
        sku, name, category = str(row["sku"]), str(row["name"]), str(row["category"])
    except KeyError as exc:
        raise RowError(f"unreadable row: {exc!r}") from None
    price = _price(raw_price)
    stock = _stock(raw_stock)
    if not sku or len(sku) > 32:
        raise RowError("sku must be 1-32 characters")
    description = str(row.get("description", ""))[:2000]
    if any("\x00" in text for text in (sku, name, category, description)):
        raise RowError("text must not contain NUL characters (PostgreSQL cannot store them)")
    return {"sku": sku, "name": name[:200], "category": category[:60],
            "description": description, "price": price, "stock": stock}  # fmt: skip


def rejection(index: int, row: Any, reason: str) -> dict[str, Any]:
    """One entry of an import's `rejected` list."""
    sku = row.get("sku") if isinstance(row, dict) else None
    return {"index": index, "sku": sku, "reason": reason}


def check_batch(
    rows: list[dict[str, Any]],
) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """Every row checked: (index, the row as the table takes it) for the good ones, and a
    rejection for each bad one, a SKU seen earlier in the batch included (the first one
    wins). SKUs already in the table are for the insert to find (`taken`): checked here,
    another import could still take them before this one commits."""
    good: list[tuple[int, dict[str, Any]]] = []
    rejected: list[dict[str, Any]] = []
    first_at: dict[str, int] = {}
    for index, row in enumerate(rows):
        try:
            checked = check_row(row)
        except RowError as exc:
            rejected.append(rejection(index, row, str(exc)))
            continue
        earlier = first_at.setdefault(checked["sku"], index)
        if earlier != index:
            reason = f"sku {checked['sku']} appears twice in the batch (first at index {earlier})"
            rejected.append(rejection(index, row, reason))
            continue
        good.append((index, checked))
    return good, rejected


def taken(sku: str) -> str:
    return f"sku {sku} is already taken"


def count_rows(outcome: str, n: int) -> None:
    if n:
        metrics.WORK_ITEMS.labels("import_rows", outcome).inc(n)
