"""heavy-json (seed 45): a 50 MB JSON response built in memory and validated row by row.

Seam: `ExportRenderer`, how `GET /export/orders` renders its rows
(`seams.pick(heavy_json.SCENARIO)`).
The rows come from a generator in both variants (the export's source is not
the point); what differs is whether the whole document is materialised.
`lab/bench/heavy_json_steps.py` measures each step of the fix on its own
(orjson, dropping validation, streaming, compression), side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Protocol

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Receive, Scope, Send

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding

__all__ = [
    "SCENARIO",
    "BufferedValidatedJson",
    "ExportParams",
    "ExportRenderer",
    "ExportRow",
    "GZipped",
    "StreamedNdjson",
    "export_rows",
    "ndjson_chunks",
]


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: int = Field(250_000, ge=1, le=5_000_000, description="rows per export (~200 B each)")
    chunk_rows: int = Field(2_000, ge=1, le=100_000, description="fixed: rows per streamed chunk")
    gzip_level: int = Field(
        1, ge=0, le=9, description="fixed: gzip level for clients that accept it (0: off)"
    )


class ExportRenderer(Protocol):
    """The seam: the export's whole HTTP response (its encoding follows the request's
    Accept-Encoding where the variant compresses)."""

    def render(self) -> Response: ...


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

    def render(self) -> Response:
        rows = _ROWS.validate_python(list(export_rows(self.rows)))
        return JSONResponse(jsonable_encoder(rows))


# --- fixed ------------------------------------------------------------------


class StreamedNdjson:
    """Newline-delimited JSON, encoded by orjson a chunk at a time as the client
    reads; compressed by Starlette's GZipMiddleware for clients that accept gzip."""

    def __init__(self, params: ExportParams) -> None:
        self.rows = params.rows
        self.chunk_rows = params.chunk_rows
        self.gzip_level = params.gzip_level

    def render(self) -> Response:
        body = ndjson_chunks(export_rows(self.rows), self.chunk_rows)
        response = StreamingResponse(body, media_type="application/x-ndjson")
        return GZipped(response, self.gzip_level) if self.gzip_level else response


def ndjson_chunks(rows: Iterator[dict[str, Any]], chunk_rows: int) -> Iterator[bytes]:
    """One orjson line per row, `chunk_rows` lines per chunk: memory stays at one chunk."""
    batch: list[bytes] = []
    for row in rows:
        batch.append(orjson.dumps(row, default=str))
        if len(batch) == chunk_rows:
            yield b"\n".join(batch) + b"\n"
            batch = []
    if batch:
        yield b"\n".join(batch) + b"\n"


class GZipped(Response):
    """`response` sent through Starlette's `GZipMiddleware`, as if the middleware
    wrapped this one route: gzipped when the request accepts it (a streamed body
    chunk by chunk, each flushed, so the client decodes as it reads), sent as is
    when not, with `Vary: Accept-Encoding` either way.

    App-wide, `app.add_middleware(GZipMiddleware)` is the one-liner; here only the
    fixed export compresses, so the other scenarios' responses (and their CPU
    numbers) are the same whichever variant this one runs.
    """

    def __init__(self, response: Response, compresslevel: int, minimum_size: int = 1000) -> None:
        # Not Response.__init__: the wrapped response owns the status, headers and body.
        self.response = response
        self.status_code = response.status_code
        self.raw_headers = response.raw_headers
        self.media_type = response.media_type
        self.background = response.background
        self._middleware = GZipMiddleware(
            response, minimum_size=minimum_size, compresslevel=compresslevel
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.response.background = self.background  # FastAPI sets it on what the route returns
        await self._middleware(scope, receive, send)


def _signature(s: Signs) -> Finding | None:
    """A large answer built whole in memory: the peak RSS rises (Signs.peak_memory)
    with answers of megabytes."""
    if (s.number("bytes_per_request") or 0.0) < 1e6:
        return None
    score = s.peak_memory()
    return finding(
        "heavy-json",
        score,
        (
            Clue("peak RSS rise under load", s.number("peak_rss_growth_mb"), "< 100", "MB"),
            Clue("mean response size", s.number("bytes_per_request"), "", "B"),
        ),
        confirm="profile=memray",
    )


SCENARIO: Scenario[ExportRenderer, ExportParams] = Scenario(
    signature=_signature,
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
    answers=(
        Answer(
            "JSON response is 50MB.",
            """\
Do not build a 50 MB document in memory. The faulty export validates 250,000 rows into
models and encodes them as one body: RSS grows by {faulty.rss_growth_mb} MB while exports
are served, and the first byte waits for the last. The fix streams NDJSON with orjson a
chunk at a time through Starlette's `GZipMiddleware`: {fixed.rss_growth_mb} MB, and p95
{faulty.p95_ms} ms against {fixed.p95_ms} ms. The step table above measures each change on
its own (`make bench` part `heavy-json-steps`, or `python -m lab.bench.heavy_json_steps`).
Reproduce with `make fault=heavy-json compare`.""",
        ),
        Answer(
            "Why use ORJSONResponse?",
            """\
For the encoder alone, orjson is faster than the standard library and handles datetimes
and decimals; but the step table shows where the time goes: validating every row and
`jsonable_encoder`, not `json.dumps`. Swapping the encoder (step `validated_orjson`) gains
little; dropping per-row models on trusted data (`orjson`) gains most, and only streaming
(`ndjson`) bounds memory. FastAPI 0.130+ writes a declared `response_model` with
Pydantic's core and deprecates `ORJSONResponse`: declare the model, or return orjson bytes
with `response_model=None` when the data is already trusted.""",
        ),
        Answer(
            "How to compress responses?",
            """\
With a maintained middleware, only when the client asks (`Accept-Encoding: gzip`):
`app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=1)`, or the reverse
proxy. On a streamed body it compresses and flushes chunk by chunk, so memory stays at one
chunk; level 1 costs little CPU for most of the saving (step `ndjson_gzip` against
`ndjson`: the wire and CPU columns). Higher levels (Starlette's default is 9) cost more CPU
per byte saved: measure before raising it.""",
        ),
    ),
    diagnosis="""\
**What you see.** RSS spikes by several hundred MB per concurrent export
(report: RSS plot; `rss_growth_mb`), time to first byte equals time to last
byte, and CPU is spent in pydantic validation and `json.dumps`
(`profile=py-spy` shows `jsonable_encoder`). Two or three exports at once can
OOM a small container.

**Why ORJSONResponse (seed 45).** orjson encodes faster than the standard
library and handles datetimes/decimals natively, but on this export the encoder
is not where the time goes: validating every row and `jsonable_encoder` are.
Swap the encoder alone and the export is barely faster; drop the per-row
models on data already trusted and it is many times faster
(`python -m lab.bench.heavy_json_steps` measures each step on its own). The
FastAPI this lab runs (0.165) writes a declared response model's JSON with
Pydantic's core and deprecates `ORJSONResponse`. Any encoder still builds the
whole document. For big payloads, stream: NDJSON (one JSON object per
line) or a JSON array written in chunks, from a generator or a DB cursor
(`yield_per`), so memory is bounded by the chunk, not the export.

**How to compress.** With Starlette's `GZipMiddleware` (`GZipped` above
applies it to this one response; `app.add_middleware(GZipMiddleware,
minimum_size=1000, compresslevel=1)` does it for every route) or the reverse
proxy, when the client sends `Accept-Encoding: gzip`. On a streamed body the
middleware keeps one gzip stream and compresses and flushes each chunk as it
comes (in a worker thread for chunks over 128 KiB), so memory stays at one
chunk and the client decodes as it reads. The page's step table gives the bytes
on the wire at level 1 (Starlette's default is 9, for more CPU).
Skip validation on the way out when the data is already trusted
(`response_model=None` with an explicit response class).
""",
)
