"""/export/orders: the bulk export (the heavy-json seam's route)."""

from __future__ import annotations

import json

import pytest

from tests.app.helpers import Lab

pytestmark = pytest.mark.unit

DEFAULT_ROWS = 250_000  # heavy-json's `rows` default: what the fixed variant exports
FIRST_ROW = {
    "order_id": 1, "user_id": 2, "status": "paid", "total": "0.01", "currency": "EUR",
    "items": 2, "created_at": "2026-11-02T12:01:00Z",
    "note": "gift wrap requested by customer 2, leave at the door" * 2,
}  # fmt: skip


def test_export_streams_ndjson(lab: Lab) -> None:
    response = lab.client.get("/export/orders", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    body = response.content
    assert body.endswith(b"\n")
    assert body.count(b"\n") == DEFAULT_ROWS
    first, _, rest = body.partition(b"\n")
    assert json.loads(first) == FIRST_ROW
    last = rest.rstrip(b"\n").rpartition(b"\n")[2]
    assert json.loads(last)["order_id"] == DEFAULT_ROWS


def test_export_is_gzipped_for_clients_that_accept_it(lab: Lab) -> None:
    response = lab.client.get("/export/orders", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    body = response.content  # decoded by httpx: the same NDJSON document
    assert response.num_bytes_downloaded < len(body) // 5  # compressed on the wire
    assert body.count(b"\n") == DEFAULT_ROWS
    assert json.loads(body.partition(b"\n")[0]) == FIRST_ROW


def test_export_compression_is_gzip_only(lab: Lab) -> None:
    # Starlette's GZipMiddleware does gzip and nothing else: Locust's "gzip, deflate, br"
    # gets gzip; a client that accepts only brotli gets the identity encoding.
    locust = lab.client.get("/export/orders", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert locust.headers["content-encoding"] == "gzip"
    brotli_only = lab.client.get("/export/orders", headers={"Accept-Encoding": "br"})
    assert "content-encoding" not in brotli_only.headers
    assert brotli_only.headers["vary"] == "Accept-Encoding"
    assert brotli_only.content == locust.content  # the same NDJSON once decoded
