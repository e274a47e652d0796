"""Bulk imports of products: what the table takes, why it refuses a row, what is counted.

`POST /imports/products` answers a RowError with 422, and both variants of the
row-by-row-insert seam (faults/row_by_row_insert.py) validate each row with
`check_row` and count the rows with `count_rows`, so they live here, not in the
scenario.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from target_app import metrics

__all__ = ["RowError", "check_row", "count_rows"]


class RowError(ValueError):
    pass


def check_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the table takes it, or RowError saying what is wrong with it."""
    try:
        price = Decimal(str(row["price"]))
        stock = int(row["stock"])
        sku, name, category = str(row["sku"]), str(row["name"]), str(row["category"])
    except (KeyError, ValueError, InvalidOperation) as exc:
        raise RowError(f"unreadable row: {exc!r}") from None
    if price <= 0:
        raise RowError(f"price must be positive, got {price}")
    if stock < 0:
        raise RowError(f"stock must be >= 0, got {stock}")
    if not sku or len(sku) > 32:
        raise RowError("sku must be 1-32 characters")
    description = str(row.get("description", ""))[:2000]
    return {"sku": sku, "name": name[:200], "category": category[:60],
            "description": description, "price": price, "stock": stock}  # fmt: skip


def count_rows(outcome: str, n: int) -> None:
    if n:
        metrics.WORK_ITEMS.labels("import_rows", outcome).inc(n)
