"""heavy-json (seed 45): a 50 MB JSON response built in memory and validated row by row.

Seam: `ExportRenderer`, how `GET /export/orders` renders its rows
(`seams.pick(heavy_json.SCENARIO)`).
The rows come from a generator in both variants (the export's source is not
the point); what differs is whether the whole document is materialised.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Protocol

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from faults._contract import Scenario, Symptom

__all__ = [
    "SCENARIO",
    "BufferedValidatedJson",
    "ExportParams",
    "ExportRenderer",
    "ExportRow",
    "StreamedNdjson",
    "gzipped",
]


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: int = Field(250_000, ge=1, le=5_000_000, description="rows per export (~200 B each)")
    chunk_rows: int = Field(2_000, ge=1, le=100_000, description="fixed: rows per streamed chunk")
    gzip_level: int = Field(
        1, ge=0, le=9, description="fixed: gzip level for clients that accept it (0: off)"
    )


class ExportRenderer(Protocol):
    """The seam: the export's whole HTTP response, encoded for what the client accepts."""

    def render(self, accept_encoding: str) -> Response: ...


class ExportRow(BaseModel):
    order_id: int
    user_id: int
    status: str
    total: Decimal
    currency: str
    items: int
    created_at: str
    note: str


def export_rows(count: int) -> Iterator[dict[str, Any]]:
    for i in range(1, count + 1):
        yield {
            "order_id": i,
            "user_id": i % 9973 + 1,
            "status": ("pending", "paid", "shipped")[i % 3],
            "total": Decimal(i % 50_000) / 100,
            "currency": "EUR",
            "items": i % 7 + 1,
            "created_at": f"2026-11-{i % 28 + 1:02d}T12:{i % 60:02d}:00Z",
            "note": f"gift wrap requested by customer {i % 9973 + 1}, leave at the door" * 2,
        }


_ROWS = TypeAdapter(list[ExportRow])


# --- faulty -----------------------------------------------------------------


class BufferedValidatedJson:
    """Validate every row into a model, encode the whole list, then send it:
    the document exists several times over in memory before the first byte leaves."""

    def __init__(self, params: ExportParams) -> None:
        self.rows = params.rows

    def render(self, accept_encoding: str = "") -> Response:
        rows = _ROWS.validate_python(list(export_rows(self.rows)))
        return JSONResponse(jsonable_encoder(rows))


# --- fixed ------------------------------------------------------------------


class StreamedNdjson:
    """Newline-delimited JSON, encoded by orjson a chunk at a time as the client
    reads, and gzipped chunk by chunk for clients that accept it."""

    def __init__(self, params: ExportParams) -> None:
        self.rows = params.rows
        self.chunk_rows = params.chunk_rows
        self.gzip_level = params.gzip_level

    def render(self, accept_encoding: str = "") -> Response:
        def chunks() -> Iterator[bytes]:
            batch: list[bytes] = []
            for row in export_rows(self.rows):
                batch.append(orjson.dumps(row, default=str))
                if len(batch) == self.chunk_rows:
                    yield b"\n".join(batch) + b"\n"
                    batch = []
            if batch:
                yield b"\n".join(batch) + b"\n"

        headers = {"Vary": "Accept-Encoding"}
        body = chunks()
        if self.gzip_level and "gzip" in accept_encoding.lower():
            body = gzipped(body, self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        return StreamingResponse(body, media_type="application/x-ndjson", headers=headers)


def gzipped(chunks: Iterator[bytes], level: int) -> Iterator[bytes]:
    """One gzip stream over many chunks: each is compressed and flushed as it comes,
    so memory stays at one chunk and the client can decode as it reads."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip header and trailer
    for chunk in chunks:
        yield compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
    yield compressor.flush()


SCENARIO: Scenario[ExportRenderer, ExportParams] = Scenario(
    slug="heavy-json",
    title="A 50 MB JSON response: built, validated and encoded in memory",
    seeds=(45,),
    kind="fault",
    summary=(
        "An export of 250,000 rows (~50 MB) is validated into models and encoded as one "
        "document: RSS jumps by hundreds of MB per request and the first byte waits for "
        "the last. Streamed as NDJSON with orjson (gzipped on the way), memory stays flat."
    ),
    faulty=BufferedValidatedJson,
    fixed=StreamedNdjson,
    params=ExportParams,
    workload="export",
    default_load={"users": 2, "duration": "30s"},
    profile_hint="memory",
    symptom=Symptom(
        metric="rss_growth_mb",
        op=">",
        threshold=200.0,
        description="app RSS grows by hundreds of MB while exports are served",
    ),
    diagnosis="""\
**What you see.** RSS spikes by several hundred MB per concurrent export
(report: RSS plot; `rss_growth_mb`), time to first byte equals time to last
byte, and CPU is spent in pydantic validation and `json.dumps`
(`profile=py-spy` shows `jsonable_encoder`). Two or three exports at once can
OOM a small container.

**Why ORJSONResponse (seed 45).** orjson encodes several times faster than the
standard library and handles datetimes/decimals natively; but it still builds
the whole document. For big payloads, stream: NDJSON (one JSON object per
line) or a JSON array written in chunks, from a generator or a DB cursor
(`yield_per`), so memory is bounded by the chunk, not the export.

**How to compress.** The fixed variant gzips the stream itself when the client
sends `Accept-Encoding: gzip`: one gzip stream, each chunk compressed and
flushed (`Z_SYNC_FLUSH`) as it is produced, so memory stays at one chunk and
the client decodes as it reads. The 63 MB export goes out as 6.4 MB at level 1
(4.8 MB at level 6, for more CPU). `GZipMiddleware(minimum_size=1000)` or the
reverse proxy does the same for every route. Skip validation on the way out
when the data is already trusted (`response_model=None` with an explicit
response class).
""",
)
