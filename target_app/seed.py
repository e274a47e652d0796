"""Deterministic shop data: the same `rows` always gives the same rows.

`rows` is the number of products; users, orders and items scale from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from itertools import chain, islice
from typing import Any

from sqlalchemy import create_engine, delete, func, insert, select, update
from sqlalchemy.engine import Connection, make_url

from target_app.migrate import upgrade
from target_app.models import Order, OrderItem, OutboxMessage, Payment, Product, User
from target_app.passwords import seed_hash

__all__ = ["CATEGORIES", "seed"]

CATEGORIES = ["books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office"]
_BATCH = 5_000


def _batched(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def seed(
    database_url: str,
    rows: int = 10_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Migrate, then fill the shop. Idempotent: an already seeded database is kept."""
    upgrade(database_url)
    if make_url(database_url).get_backend_name() == "postgresql":
        return _seed_postgres(database_url, rows, progress or (lambda *_: None))
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            have = conn.scalar(select(func.count()).select_from(Product)) or 0
            if have == rows:
                # Seeded before users had passwords (migration 0006): give them theirs.
                # Hashed only then: Argon2 costs 0.2 s, and this path runs every run.
                without = select(User.id).where(User.password_hash.is_(None)).limit(1)
                if conn.scalar(without) is not None:
                    conn.execute(
                        update(User)
                        .where(User.password_hash.is_(None))
                        .values(password_hash=seed_hash())
                    )
                return _counts(conn)
            if have:
                for model in (Payment, OrderItem, Order, Product, User):
                    conn.execute(delete(model))
            _fill(conn, rows, progress or (lambda *_: None))
            return _counts(conn)
    finally:
        engine.dispose()


def _counts(conn: Connection) -> dict[str, int]:
    return {
        model.__tablename__: conn.scalar(select(func.count()).select_from(model)) or 0
        for model in (User, Product, Order, OrderItem, Payment)
    }


def _fill(conn: Connection, rows: int, progress: Callable[[str, int, int], None]) -> None:
    for model, source, expected in _sources(rows):
        done = 0
        for batch in _batched(source(), _BATCH):
            conn.execute(insert(model), batch)
            done += len(batch)
            progress(model.__tablename__, done, expected)


def _sources(rows: int) -> list[tuple[Any, Callable[[], Iterator[dict[str, Any]]], int]]:
    """Each table's model, row generator and expected count, in load order.

    The generators share one random stream: consume them in this order, one after
    the other, and the same `rows` always gives the same data.
    """
    rnd = random.Random(20261125)
    n_users = max(rows // 10, 10)
    n_orders = max(rows // 5, 10)

    password = seed_hash()  # every seeded user's, SEED_PASSWORD (target_app/passwords.py)

    def users() -> Iterator[dict[str, Any]]:
        for i in range(1, n_users + 1):
            yield {
                "id": i,
                "email": f"user{i}@shop.test",
                "name": f"User {i}",
                "role": "admin" if i == 1 else ("seller" if i % 50 == 0 else "customer"),
                "password_hash": password,
            }

    def products() -> Iterator[dict[str, Any]]:
        for i in range(1, rows + 1):
            category = CATEGORIES[i % len(CATEGORIES)]
            yield {
                "id": i,
                "sku": f"SKU-{i:08d}",
                "name": f"{category.title()} item {i}",
                "category": category,
                "description": f"A fine {category} product, number {i}. " * 3,
                "price": Decimal(rnd.randint(100, 50_000)) / 100,
                "stock": rnd.randint(0, 500),
            }

    def orders() -> Iterator[dict[str, Any]]:
        for i in range(1, n_orders + 1):
            yield {
                "id": i,
                "user_id": rnd.randint(1, n_users),
                "status": rnd.choice(["pending", "paid", "shipped"]),
                "total": Decimal(rnd.randint(100, 200_000)) / 100,
            }

    def items() -> Iterator[dict[str, Any]]:
        item_id = 0
        for order_id in range(1, n_orders + 1):
            for _ in range(rnd.randint(1, 4)):
                item_id += 1
                yield {
                    "id": item_id,
                    "order_id": order_id,
                    "product_id": rnd.randint(1, rows),
                    "quantity": rnd.randint(1, 3),
                    "unit_price": Decimal(rnd.randint(100, 50_000)) / 100,
                }

    def payments() -> Iterator[dict[str, Any]]:
        for i in range(1, n_orders + 1):
            yield {
                "id": i,
                "order_id": i,
                "amount": Decimal(rnd.randint(100, 200_000)) / 100,
                "status": "captured",
                "provider_ref": f"pay_{i:010d}",
            }

    return [
        (User, users, n_users),
        (Product, products, rows),
        (Order, orders, n_orders),
        (OrderItem, items, n_orders * 4),
        (Payment, payments, n_orders),
    ]


def _seed_postgres(
    database_url: str, rows: int, progress: Callable[[str, int, int], None]
) -> dict[str, int]:
    """The same rows as `_fill`, loaded with COPY: a million products in seconds.

    One transaction: a failed load leaves the previous data. The sequences are
    moved past the seeded ids, so the app's own inserts do not collide with them.
    """
    import psycopg

    url = make_url(database_url).set(drivername="postgresql")
    tables = [model.__tablename__ for model in (User, Product, Order, OrderItem, Payment)]
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        row = conn.execute("SELECT count(*) FROM products").fetchone()
        if row is not None and row[0] == rows:
            # Seeded before users had passwords (migration 0006): give them theirs.
            # Hashed only then: Argon2 costs 0.2 s, and this path runs every run.
            if conn.execute("SELECT 1 FROM users WHERE password_hash IS NULL LIMIT 1").fetchone():
                conn.execute(
                    "UPDATE users SET password_hash = %s WHERE password_hash IS NULL",
                    [seed_hash()],
                )
            return _pg_counts(conn, tables)
        # The outbox's messages name orders (migration 0008): they go with them.
        conn.execute(
            f"TRUNCATE {', '.join(reversed(tables))}, {OutboxMessage.__tablename__} "
            "RESTART IDENTITY"
        )
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if (superuser.fetchone() or [False])[0]:
            # The rows are generated consistent: skip the per-row foreign-key triggers,
            # which would take longer than the COPY itself.
            conn.execute("SET LOCAL session_replication_role = replica")
        for model, source, expected in _sources(rows):
            table = model.__tablename__
            batches = _batched(source(), _BATCH)
            first = next(batches, [])
            if not first:
                continue
            # The generator's keys: columns it leaves out (created_at) take their default.
            columns = list(first[0])
            done = 0
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for batch in chain([first], batches):
                    for record in batch:
                        copy.write_row([record[c] for c in columns])
                    done += len(batch)
                    progress(table, done, expected)
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        for table in tables:
            conn.execute(f"ANALYZE {table}")
        return _pg_counts(conn, tables)


def _pg_counts(conn: Any, tables: list[str]) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
