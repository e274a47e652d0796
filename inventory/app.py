"""The inventory service: the stock of the shop's products, in a database of its own.

The shop's order placement (faults/microservice_cascade.py) calls it through
Toxiproxy, so the link between the two services can fail like a network does.
It is a well-built service, as the other team's would be; what the scenario
teaches is how its caller copes.

Business endpoints:

- `POST /reservations` {order_id, lines: [{product_id, quantity}]}: take each
  line's quantity of stock for the order, all or nothing, in one transaction;
  201 with the reservation. The order id is the reservation's key: the same
  order again (a caller's retry after a lost answer) gets the first reservation
  back (200, `replayed: true`) and takes nothing; the same order with other
  lines is a 409 `conflict`. Not enough stock of a line: 409 `out_of_stock`,
  nothing taken.
- `GET /reservations/{order_id}`: the reservation, or 404: how a caller that lost
  an answer learns what happened.
- `DELETE /reservations/{order_id}`: give the stock back (a saga's compensation);
  200 whether or not there was one.

Control plane: `GET /healthz`; `PUT /_control/stock` {products, quantity, sold_out}: a
fresh warehouse, every product 1..products holding `quantity` (the `sold_out`
ones none), no reservation (a run's start); `GET /_control/reservations`: every
order id reserved, from the table (how the lab counts the inconsistencies
between the two databases).

Its database is INVENTORY_DATABASE_URL (a PostgreSQL database, created at start-up
if it does not exist, its tables too).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, create_engine, make_url, text

from inventory import __version__

__all__ = ["Line", "ReservationIn", "app", "create_app", "ensure_database"]

DEFAULT_DATABASE_URL = "postgresql+psycopg://lab@127.0.0.1:15432/inventory"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stock (
        product_id integer PRIMARY KEY,
        available integer NOT NULL CHECK (available >= 0))""",
    """CREATE TABLE IF NOT EXISTS reservations (
        order_id bigint PRIMARY KEY,
        lines jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
)


class Line(BaseModel):
    product_id: int = Field(ge=1, le=2**31 - 1)
    quantity: int = Field(ge=1, le=1000)


class ReservationIn(BaseModel):
    order_id: int = Field(ge=1, le=2**63 - 1)
    lines: list[Line] = Field(min_length=1, max_length=50)


class StockIn(BaseModel):
    products: int = Field(ge=1, le=1_000_000)
    quantity: int = Field(ge=0, le=1_000_000)
    sold_out: list[int] = Field(default_factory=list, max_length=1000)  # these hold none


def ensure_database(url: str) -> None:
    """The service's database and tables, created if missing."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
    engine = create_engine(target)
    try:
        with engine.begin() as conn:
            for statement in SCHEMA:
                conn.execute(text(statement))
    finally:
        engine.dispose()


class _OutOfStock(Exception):
    def __init__(self, product_id: int) -> None:
        self.product_id = product_id


def _lines(lines: list[Line]) -> list[dict[str, int]]:
    """A reservation's lines in one order, so that a repeat compares equal."""
    merged: dict[int, int] = {}
    for line in lines:
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
    return [{"product_id": p, "quantity": q} for p, q in sorted(merged.items())]


def create_app(database_url: str | None = None) -> FastAPI:
    url = database_url or os.environ.get("INVENTORY_DATABASE_URL", DEFAULT_DATABASE_URL)
    engine: Engine | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal engine
        ensure_database(url)
        engine = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        yield
        engine.dispose()

    @contextlib.contextmanager
    def transaction() -> Iterator[Connection]:
        assert engine is not None, "the app's lifespan has not run"
        with engine.begin() as conn:
            yield conn

    app = FastAPI(title="Inventory", version=__version__, lifespan=lifespan)

    @app.post("/reservations", status_code=201)
    def reserve(payload: ReservationIn) -> Any:
        lines = _lines(payload.lines)
        try:
            with transaction() as conn:
                new = conn.execute(
                    text("INSERT INTO reservations (order_id, lines) "
                         "VALUES (:o, CAST(:l AS jsonb)) "
                         "ON CONFLICT (order_id) DO NOTHING RETURNING order_id"),
                    {"o": payload.order_id, "l": json.dumps(lines)},
                ).first()  # fmt: skip
                if new is None:
                    # Committed by an earlier call (ON CONFLICT waited for it): a replay.
                    first = conn.execute(
                        text("SELECT lines FROM reservations WHERE order_id = :o"),
                        {"o": payload.order_id},
                    ).scalar_one()
                    if first != lines:
                        raise HTTPException(409, {"error": "conflict", "message":
                            f"order {payload.order_id} reserved other lines: {first}"})  # fmt: skip
                    return JSONResponse(
                        {"order_id": payload.order_id, "lines": first, "replayed": True}, 200
                    )
                for line in lines:
                    taken = conn.execute(
                        text("UPDATE stock SET available = available - :q "
                             "WHERE product_id = :p AND available >= :q RETURNING available"),
                        {"p": line["product_id"], "q": line["quantity"]},
                    ).first()  # fmt: skip
                    if taken is None:
                        raise _OutOfStock(line["product_id"])  # rolls the whole reservation back
        except _OutOfStock as short:
            return JSONResponse(
                {"error": "out_of_stock", "product_id": short.product_id,
                 "message": f"not enough stock of product {short.product_id}"},
                409,
            )  # fmt: skip
        return {"order_id": payload.order_id, "lines": lines, "replayed": False}

    @app.get("/reservations/{order_id}")
    def reservation(order_id: int) -> dict[str, Any]:
        with transaction() as conn:
            lines = conn.execute(
                text("SELECT lines FROM reservations WHERE order_id = :o"), {"o": order_id}
            ).scalar_one_or_none()
        if lines is None:
            raise HTTPException(
                404, {"error": "not_found", "message": f"no reservation for order {order_id}"}
            )
        return {"order_id": order_id, "lines": lines}

    @app.delete("/reservations/{order_id}")
    def release(order_id: int) -> dict[str, Any]:
        with transaction() as conn:
            lines = conn.execute(
                text("DELETE FROM reservations WHERE order_id = :o RETURNING lines"),
                {"o": order_id},
            ).scalar_one_or_none()
            for line in lines or []:
                conn.execute(
                    text("UPDATE stock SET available = available + :q WHERE product_id = :p"),
                    {"p": line["product_id"], "q": line["quantity"]},
                )
        return {"order_id": order_id, "released": lines is not None}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with transaction() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.put("/_control/stock")
    def restock(payload: StockIn) -> dict[str, Any]:
        with transaction() as conn:
            conn.execute(text("TRUNCATE reservations, stock"))
            conn.execute(
                text("INSERT INTO stock (product_id, available) "
                     "SELECT g, :q FROM generate_series(1, :n) AS g"),
                {"q": payload.quantity, "n": payload.products},
            )  # fmt: skip
            if payload.sold_out:
                conn.execute(
                    text("UPDATE stock SET available = 0 WHERE product_id = ANY(:ids)"),
                    {"ids": payload.sold_out},
                )
        return {"products": payload.products, "quantity": payload.quantity}

    @app.get("/_control/reservations")
    def reservations() -> dict[str, Any]:
        with transaction() as conn:
            rows = conn.execute(
                text("SELECT order_id, lines FROM reservations ORDER BY order_id")
            ).all()
            available = conn.execute(
                text("SELECT coalesce(sum(available), 0) FROM stock")
            ).scalar_one()
        return {
            "orders": [int(r.order_id) for r in rows],
            "units_reserved": sum(line["quantity"] for r in rows for line in r.lines),
            "units_available": int(available),
        }

    return app


app = create_app()
