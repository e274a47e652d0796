"""Parameter types the routes share: every integer a client sends is bounded in the schema.

An id is bounded by what its column holds. `users.id`, `products.id` and
`orders.id` are INTEGER (target_app/models.py): 4 bytes on PostgreSQL, where a
larger value in a query is an error, and 8 on SQLite, where one past 2**63
overflows the driver. Either way an unbounded `int` let a client's typo reach
the database as a 500; bounded, it is a 422 that names the parameter, and the
OpenAPI schema says what is accepted.

The types are `Annotated` with pydantic's `Field`, so one type serves a path,
a query and a body model alike (FastAPI adds `Path`/`Query` by position).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = [
    "ID_MAX",
    "ByteCount",
    "OrderId",
    "OrdersBefore",
    "ProductId",
    "ProductsAfter",
    "UserId",
]

ID_MAX = 2**31 - 1  # PostgreSQL's INTEGER; SQLite's is wider, so this bounds both
# What a file size or offset can be (a signed 64-bit off_t).
BYTES_MAX = 2**63 - 1

UserId = Annotated[int, Field(ge=1, le=ID_MAX, description="a user's id")]
ProductId = Annotated[int, Field(ge=1, le=ID_MAX, description="a product's id")]
OrderId = Annotated[int, Field(ge=1, le=ID_MAX, description="an order's id")]

# Keyset positions: after a product id (0: from the start), before an order id
# (one past the largest id: from the newest).
ProductsAfter = Annotated[int, Field(ge=0, le=ID_MAX, description="a product id; 0: the first")]
OrdersBefore = Annotated[
    int, Field(ge=1, le=ID_MAX + 1, description="an order id; the default: the newest")
]

ByteCount = Annotated[int, Field(ge=0, le=BYTES_MAX)]
