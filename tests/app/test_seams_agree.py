"""A fix must not change the answer: each seam's two variants, behind its real route.

Every request is made twice through the app: with the fault off (the fixed
variant) and on (the faulty one, switched by `PUT /_lab/faults/{slug}`, which
writes the toggle store the app reads at once; `Lab.enable` also checks the
listing's `variant_here`). What a fix may change (time, memory, queries, the
response's framing) is not compared; the data is.

The fixed variant always runs with its scenario's default parameters (only a
toggle carries parameters), so a parameter that is part of the answer (memory-leak's
`related`, offset-pagination's `size`, orm-overhead's `window_orders`, blocking-call's
`items`) keeps its default in the faulty run too.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import faults
from tests.app.helpers import (
    N_ORDERS,
    N_USERS,
    ROWS,
    UPLOAD_CAP,
    Lab,
    copy_db,
    lab_settings,
    open_lab,
)

pytestmark = pytest.mark.unit

T = TypeVar("T")

# slug -> the route whose answers are compared here.
SAME_DATA = {
    "blocking-call": "GET /recommendations/{user_id}",
    "cpu-bound": "GET /quotes/{product_id}",
    "db-latency": "GET /users/{user_id}/dashboard",
    "heavy-json": "GET /export/orders",
    "memory-leak": "GET /products/{product_id}",
    "n-plus-one": "GET /orders",
    "no-cache": "GET /catalog/bestsellers",
    "offset-pagination": "GET /products/pages",
    "orm-overhead": "GET /reports/sales",
    "performance-testing": "GET /pricing/bands",  # tests/app/test_pricing.py
    "pool-exhaustion": "GET /orders/{order_id}/invoice",
    "row-by-row-insert": "POST /imports/products",
    "slicer": "GET /products",
    "slow-query": "GET /products/search",
    "upload-in-memory": "PUT, POST, HEAD, PATCH /uploads",
}
# slug -> why its variants are not compared in-process.
NOT_HERE = {
    "microservice-cascade": "needs the inventory service and PostgreSQL: the contract test "
    "audits both variants' orders in both databases (tests/scenarios/"
    "test_microservice_cascade.py)",
    "bandwidth-limit": "GET /products/{id}/availability needs the upstream API: without "
    "UPSTREAM_URL it is a 503 before the seam is reached (test_products.py)",
    "upstream-flaky": "POST /orders/{id}/pay needs the upstream API (503 before the seam)",
    "upstream-slow": "POST /orders/{id}/pay needs the upstream API (503 before the seam)",
    "redis-timeout": "GET /catalog/stats needs Redis (503 before the seam, test_catalog.py)",
    "etl-in-memory": "both variants write with PostgreSQL's COPY: on SQLite neither can run "
    "(a 503 that names PostgreSQL, test_etl.py)",
    "long-task-inline": "its variants answer differently on purpose (200 with the finished "
    "job vs 202 with its URLs), and both need PostgreSQL's COPY; the contract test runs both",
    "in-process-scheduler": "no route: its seam is asked by each worker's scheduler, and "
    "one process runs each tick once in both variants; the contract test runs 2 workers",
    "in-memory-sessions": "the fixed variant keeps sessions in Redis (503 without it, "
    "test_sessions.py); the contract test runs both with 2 workers",
    "websocket-leak": "the fixed variant fans out through Redis (1013 without it); the "
    "contract test follows orders over both with 2 workers",
    "db-down": "its variants differ on purpose (503 with Retry-After vs 500): test_health.py",
    "single-worker": "a deployment scenario: its variants are how the app is started, a "
    "toggle is a 409 (test_lab_admin.py)",
    "sync-webhook": "the fixed variant queues on Redis and writes its inbox with "
    "PostgreSQL's ON CONFLICT (503 in process, test_webhooks.py); the contract test "
    "counts both variants' payments in PostgreSQL",
    "sse-logs": "a stream without end: test_logs.py reads each variant's events over "
    "ASGI, and the unit tests hold both feeds to the same lines, order and ids",
    "bad-deploy": "a release scenario: its variants are deploy procedures run by the lab, "
    "not code in the app; tests/unit/test_bad_deploy.py steps them, the contract test "
    "counts nginx's log of both",
    "worker-sizing": "a deployment scenario: its variants are how the app is started; the "
    "WSGI adapter's answers are compared with the ASGI app's in test_wsgi.py",
}


def test_every_scenario_is_compared_or_says_why_not() -> None:
    slugs = {s.slug for s in faults.all_scenarios()}
    assert not set(SAME_DATA) & set(NOT_HERE)
    assert set(SAME_DATA) | set(NOT_HERE) == slugs


def both(lab: Lab, slug: str, fetch: Callable[[], T], **params: Any) -> tuple[T, T]:
    """`fetch()` served by the fixed variant, then by the faulty one (with `params`)."""
    assert lab.variant_here(slug) == "fixed"
    fixed = fetch()
    with lab.faulty(slug, **params):
        faulty = fetch()
    return fixed, faulty


def answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, without_request_id(response.json())


def without_request_id(body: Any) -> Any:
    """An answer's data: an error's request id is the request's own, not part of it."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"] = {k: v for k, v in body["error"].items() if k != "request_id"}
    return body


# --- reads of the seeded shop -------------------------------------------------------------


def test_memory_leak_cached_page_is_the_rendered_page(lab: Lab) -> None:
    session = {"X-Session-Id": f"agree-{uuid.uuid4().hex[:12]}"}  # a key no cache holds yet
    requests = [(1, "USD"), (2, "EUR"), (ROWS - 1, "GBP"), (1, "USD"), (ROWS + 1, "USD")]

    def fetch() -> list[tuple[int, Any]]:
        return [
            (r.status_code, r.content if r.is_success else answer(r)[1])
            for r in (
                lab.client.get(f"/products/{pid}", params={"currency": cur}, headers=session)
                for pid, cur in requests
            )
        ]

    fixed, faulty = both(lab, "memory-leak", fetch)
    assert [status for status, _ in fixed] == [200, 200, 200, 200, 404]
    assert faulty == fixed  # byte for byte, the repeat (a cache hit) included


def test_n_plus_one_eager_loading_serves_the_same_feed(lab: Lab) -> None:
    def fetch() -> list[tuple[int, Any]]:
        return [
            answer(lab.client.get("/orders")),
            answer(lab.client.get("/orders", params={"before_id": 40, "limit": 7})),
            answer(lab.client.get("/orders", params={"limit": 100})),
        ]

    fixed, faulty = both(lab, "n-plus-one", fetch)
    assert len(fixed[2][1]["orders"]) == N_ORDERS
    assert faulty == fixed


def test_offset_pagination_keyset_pages_hold_the_offset_pages_items(lab: Lab) -> None:
    """As the deep_pages workload asks: a page number and the cursor for the same depth
    (`/products/pages/bookmark`). The faulty variant reads the number, the fixed one the
    cursor. The envelope differs by design (faulty echoes `page`, fixed adds
    `next_cursor`); the items must not."""
    size = 20
    last = ROWS // size

    def cursor(page: int) -> str | None:
        if page == 1:
            return None
        bookmark = lab.client.get(
            "/products/pages/bookmark", params={"after_id": (page - 1) * size}
        )
        return str(bookmark.json()["cursor"])

    pages = [1, 2, 3, last // 2, last, last + 1]
    requests = [{"page": p} | ({"cursor": c} if (c := cursor(p)) else {}) for p in pages]

    def fetch() -> list[list[dict[str, Any]]]:
        items = []
        for params in requests:
            response = lab.client.get("/products/pages", params=params)
            assert response.status_code == 200, response.text
            items.append(response.json()["items"])
        return items

    fixed, faulty = both(lab, "offset-pagination", fetch)
    assert [page[0]["id"] for page in fixed[:-1]] == [(p - 1) * size + 1 for p in pages[:-1]]
    assert fixed[-1] == []  # past the end
    assert faulty == fixed


def test_orm_overhead_sql_aggregate_is_the_python_one(lab: Lab) -> None:
    fixed, faulty = both(lab, "orm-overhead", lambda: answer(lab.client.get("/reports/sales")))
    assert fixed[0] == 200
    assert len(fixed[1]["categories"]) == 8
    assert faulty == fixed


def test_db_latency_one_round_trip_is_four(lab: Lab) -> None:
    def fetch() -> list[tuple[int, Any]]:
        return [
            answer(lab.client.get(f"/users/{user_id}/dashboard"))
            for user_id in range(1, N_USERS + 2)  # the last one does not exist: 404
        ]

    fixed, faulty = both(lab, "db-latency", fetch)
    assert fixed[-1][0] == 404
    assert fixed[-1][1]["error"]["message"] == f"no user {N_USERS + 1}"
    assert sum(body.get("orders", 0) for _, body in fixed) == N_ORDERS
    assert faulty == fixed


def test_slicer_fewer_columns_same_list(lab: Lab) -> None:
    def fetch() -> list[tuple[int, Any]]:
        return [
            answer(lab.client.get("/products")),
            answer(lab.client.get("/products", params={"category": "toys", "limit": 500})),
            answer(lab.client.get("/products", params={"after_id": ROWS - 5})),
        ]

    fixed, faulty = both(lab, "slicer", fetch)
    assert len(fixed[1][1]["items"]) == ROWS // 8
    assert faulty == fixed


def test_cpu_bound_cached_quote_is_the_computed_one(lab: Lab) -> None:
    inputs = [(1, 1), (2, 3), (1, 1), (ROWS, 10), (2, 3)]  # repeats: cache hits in the fixed

    def fetch() -> list[tuple[int, Any]]:
        return [answer(lab.client.get(f"/quotes/{p}", params={"zone": z})) for p, z in inputs]

    # A route search per quote in the faulty variant (a few tens of ms each).
    fixed, faulty = both(lab, "cpu-bound", fetch)
    assert len({body["cents"] for _, body in fixed}) == 3
    assert faulty == fixed


def test_blocking_call_awaited_client_answers_the_same(pristine_db: Path, tmp_path: Path) -> None:
    """Both variants call a real model server (the upstream app, on a local port)."""
    from tests.app.test_recommendations import lab_with_model_server

    with lab_with_model_server(tmp_path, copy_db(pristine_db, tmp_path / "shop.sqlite")) as lab:

        def fetch() -> list[tuple[int, Any]]:
            return [answer(lab.client.get(f"/recommendations/{u}")) for u in (1, 7, 12_345)]

        fixed, faulty = both(lab, "blocking-call", fetch)
    assert [status for status, _ in fixed] == [200, 200, 200]
    assert all(len(body["product_ids"]) == 10 for _, body in fixed)
    assert faulty == fixed


def test_no_cache_ranking_is_the_computed_one(lab: Lab) -> None:
    """Without Redis the fixed variant computes uncached (its fallback), so this compares
    the ranking the two serve, not the cache; the cache is tested with Redis in
    tests/scenarios/test_no_cache.py."""

    def fetch() -> tuple[int, bytes]:
        response = lab.client.get("/catalog/bestsellers")
        return response.status_code, response.content

    fixed, faulty = both(lab, "no-cache", fetch)
    assert fixed[0] == 200
    assert len(json.loads(fixed[1])) == 50
    assert faulty == fixed


def test_heavy_json_stream_holds_the_buffered_documents_rows(lab: Lab) -> None:
    """The encoding differs by design (one JSON array vs NDJSON lines, streamed): the rows
    must not. The fixed variant exports its default 250,000 rows, the faulty one the first
    300 (its `rows` parameter): the same generator, so they must be the fixed one's first 300."""
    rows = 300
    headers = {"Accept-Encoding": "identity"}
    fixed_response = lab.client.get("/export/orders", headers=headers)
    with lab.faulty("heavy-json", rows=rows):
        faulty_response = lab.client.get("/export/orders", headers=headers)
    assert fixed_response.status_code == faulty_response.status_code == 200
    assert fixed_response.headers["content-type"] == "application/x-ndjson"
    assert faulty_response.headers["content-type"] == "application/json"
    head = fixed_response.content.split(b"\n", rows)[:rows]
    assert [json.loads(line) for line in head] == faulty_response.json()
    assert len(faulty_response.json()) == rows


def test_slow_query_with_and_without_the_index(lab: Lab, writable_db: Path, tmp_path: Path) -> None:
    """The variants are schema revisions: the faulty one runs on the database its
    `prepare` leaves (revision 0001, no index on products.name), the fixed one on head."""
    names = ["Garden item 1", "Toys item 3", f"Books item {ROWS}", "Books item", "garden item 1"]

    def fetch(on: Lab) -> list[tuple[int, Any]]:
        return [answer(on.client.get("/products/search", params={"name": n})) for n in names]

    fixed = fetch(lab)
    scenario = faults.get("slow-query")
    assert scenario.prepare is not None
    scenario.prepare("faulty", f"sqlite:///{writable_db}")
    with sqlite3.connect(writable_db) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(products)")}
    assert "ix_products_name" not in indexes  # prepare really took the index away
    with open_lab(lab_settings(tmp_path / "lab", writable_db)) as old_schema:
        old_schema.enable("slow-query")
        faulty = fetch(old_schema)
    assert [len(body["items"]) for _, body in fixed] == [1, 1, 1, 0, 0]
    assert faulty == fixed


# --- writes, and variants that leave state behind: a fresh app each ---------------------


def test_pool_exhaustion_request_scoped_session_reads_the_same(fresh_lab: Lab) -> None:
    """Where the variants legitimately differ is what they leave behind: the faulty one
    keeps each threadpool thread's session, and its pooled connection, checked out after
    the response (so: a fresh app, not the shared one). The invoices must not differ."""
    lab = fresh_lab

    def fetch() -> list[tuple[int, Any]]:
        return [answer(lab.client.get(f"/orders/{i}/invoice")) for i in (1, 2, 40, N_ORDERS, 999)]

    fixed, faulty = both(lab, "pool-exhaustion", fetch)
    assert [status for status, _ in fixed] == [200, 200, 200, 200, 404]
    assert faulty == fixed


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"sku": f"I{uuid.uuid4().hex[:12]}", "name": f"Agreeing import {uuid.uuid4().hex[:8]}",
         "category": "tools", "price": f"{i + 1}.25", "stock": i}
        for i in range(count)
    ]  # fmt: skip


def _stored(lab: Lab, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    stored = []
    for row in rows:
        (item,) = lab.client.get("/products/search", params={"name": row["name"]}).json()["items"]
        assert item["sku"] == row["sku"]
        stored.append((item["price"], row["price"]))
    return stored


def test_row_by_row_insert_batched_copy_inserts_the_same(fresh_lab: Lab) -> None:
    """A good batch: the same answer and the same rows stored (new SKUs each run, as a
    product's SKU is unique)."""
    lab = fresh_lab
    batches = iter([_rows(4), _rows(4)])
    imported: list[list[dict[str, Any]]] = []

    def fetch() -> tuple[int, Any]:
        rows = next(batches)
        imported.append(rows)
        return answer(lab.client.post("/imports/products", json=rows))

    fixed, faulty = both(lab, "row-by-row-insert", fetch)
    assert fixed == (201, {"inserted": 4, "rejected": []})
    assert faulty == fixed
    for rows in imported:
        assert all(stored == given for stored, given in _stored(lab, rows))


def test_row_by_row_insert_differs_on_a_bad_row_by_design(fresh_lab: Lab) -> None:
    """The one place where the answers differ on purpose: the faulty import stops at the
    first bad row (the rows before it stay in), the fixed one keeps every good row and
    reports each bad one."""
    lab = fresh_lab
    fixed_rows, faulty_rows = _rows(3), _rows(3)
    for rows in (fixed_rows, faulty_rows):
        rows[1]["price"] = "-1"
    fixed = lab.client.post("/imports/products", json=fixed_rows)
    assert fixed.status_code == 201
    assert fixed.json()["inserted"] == 2
    assert [(r["index"], r["sku"]) for r in fixed.json()["rejected"]] == [(1, fixed_rows[1]["sku"])]
    with lab.faulty("row-by-row-insert"):
        faulty = lab.client.post("/imports/products", json=faulty_rows)
    assert faulty.status_code == 422
    assert faulty.json()["error"]["message"] == "import stopped: price must be positive, got -1"

    def stored(rows: list[dict[str, Any]]) -> list[int]:
        return [
            len(lab.client.get("/products/search", params={"name": r["name"]}).json()["items"])
            for r in rows
        ]

    assert stored(fixed_rows) == [1, 0, 1]
    assert stored(faulty_rows) == [1, 0, 0]


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body sent in pieces (chunked, no Content-Length), as a server hands it over."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_upload_in_memory_streamed_upload_stores_the_same_file(lab: Lab) -> None:
    """The same uploads, refusals included; the resumable uploads' names are the
    server's choice (random), so they are left out."""
    # Sent in 64 KiB chunks; more than one of the fixed variant's 1 MiB blocks.
    data = random.Random(28).randbytes(UPLOAD_CAP // 2 + 12_345)
    name = f"agree-{uuid.uuid4().hex[:10]}.bin"

    def fetch() -> list[Any]:
        seen: list[Any] = []
        put = lab.client.put(f"/uploads/{name}", content=_chunks(data))
        seen.append(answer(put))
        seen.append(hashlib.sha256((lab.upload_dir / name).read_bytes()).hexdigest())
        seen.append(answer(lab.client.put(f"/uploads/{name}", content=b"x" * (UPLOAD_CAP + 1))))
        created = lab.client.post("/uploads", headers={"Upload-Length": "10"})
        resumable = created.json()["name"]
        seen.append((created.status_code, created.json()["length"]))
        for offset, chunk in [(0, b"abcd"), (0, b"abcd"), (4, b"0123456789"), (4, b"efghij")]:
            patch = lab.client.patch(
                f"/uploads/{resumable}", content=chunk, headers={"Upload-Offset": str(offset)}
            )
            body = without_request_id(patch.json()) if patch.content else None
            seen.append((patch.status_code, patch.headers.get("upload-offset"), body))
        head = lab.client.head(f"/uploads/{resumable}")
        seen.append((head.status_code, head.headers["upload-offset"]))
        seen.append((lab.upload_dir / resumable).read_bytes())
        return seen

    fixed, faulty = both(lab, "upload-in-memory", fetch)
    assert fixed[0] == (201, {
        "name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
    })  # fmt: skip
    assert fixed[1] == hashlib.sha256(data).hexdigest()
    assert fixed[2][0] == 413
    assert [step[0] for step in fixed[4:8]] == [204, 409, 413, 204]
    assert fixed[-1] == b"abcdefghij"
    assert faulty == fixed
