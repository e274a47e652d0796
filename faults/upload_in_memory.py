"""upload-in-memory (seeds 5, 28): a 500 MB upload read into memory before it is written.

Seam: `UploadReceiver`, how `PUT /uploads/{name}` and `PATCH /uploads/{name}`
take a request body (`seams.pick(upload_in_memory.SCENARIO)`). Where files live
and the bookkeeping of a resumable upload (`target_app.uploads.UploadStore`) are
the same in both variants; what differs is whether the body passes through
memory whole, and so when the size cap can act and what an interrupted upload
leaves behind.

The resumable protocol follows the core of tus (https://tus.io/protocols/resumable-upload):
`POST /uploads` with `Upload-Length` creates an upload, `HEAD` answers its
`Upload-Offset` (the bytes on disk), `PATCH` with `Upload-Offset` appends from
there, 409 when the offset is not the server's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from anyio import to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect, Request

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding

if TYPE_CHECKING:
    from target_app.uploads import Sink, UploadStore

__all__ = ["SCENARIO", "BufferedUpload", "StreamedUpload", "UploadParams", "UploadReceiver"]


class UploadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    write_kb: int = Field(
        1024, ge=4, le=65_536, description="fixed: KiB of the body gathered before each disk write"
    )


class UploadReceiver(Protocol):
    """The seam: takes a request's body into the store, whole (PUT) or appended (PATCH)."""

    async def put(self, request: Request, store: UploadStore, name: str) -> dict[str, Any]: ...

    async def append(self, request: Request, store: UploadStore, name: str, offset: int) -> int: ...


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


# --- faulty -----------------------------------------------------------------


class BufferedUpload:
    """Read the whole body (`await request.body()`, as `await file.read()` would),
    then check it and write it: memory holds the upload, twice while it is joined;
    the cap acts once it is all in; a dropped connection loses every byte received."""

    def __init__(self, params: UploadParams) -> None:
        del params  # nothing to tune: the body is one block

    async def put(self, request: Request, store: UploadStore, name: str) -> dict[str, Any]:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.uploads import too_large

        data = await request.body()
        if len(data) > store.max_bytes:
            raise too_large(store.max_bytes)
        async with store.replacing(name) as sink:
            await to_thread.run_sync(sink.write, data)
        return {"name": name, "size": sink.size, "sha256": sink.digest.hexdigest()}

    async def append(self, request: Request, store: UploadStore, name: str, offset: int) -> int:
        from target_app.uploads import too_large

        data = await request.body()
        with store.appending(name, offset) as (sink, length):
            if offset + len(data) > length:
                raise too_large(length)
            await to_thread.run_sync(sink.write, data)
        return sink.size


# --- fixed ------------------------------------------------------------------


class StreamedUpload:
    """Write the body as it arrives (`async for chunk in request.stream()`), a
    `write_kb` block at a time: memory holds one block; the cap acts on the
    Content-Length and on the byte that crosses it; what arrived before a
    dropped connection stays on disk, to resume from."""

    def __init__(self, params: UploadParams) -> None:
        self.write_bytes = params.write_kb * 1024

    async def put(self, request: Request, store: UploadStore, name: str) -> dict[str, Any]:
        from target_app.uploads import too_large

        declared = _declared_length(request)
        if declared is not None and declared > store.max_bytes:
            raise too_large(store.max_bytes)
        async with store.replacing(name) as sink:
            await self._pump(request, sink, store.max_bytes)
        return {"name": name, "size": sink.size, "sha256": sink.digest.hexdigest()}

    async def append(self, request: Request, store: UploadStore, name: str, offset: int) -> int:
        with store.appending(name, offset) as (sink, length):
            await self._pump(request, sink, length)
        return sink.size

    async def _pump(self, request: Request, sink: Sink, limit: int) -> None:
        from target_app.uploads import too_large

        block = bytearray()
        try:
            async for chunk in request.stream():
                if sink.size + len(block) + len(chunk) > limit:
                    raise too_large(limit)
                block += chunk
                if len(block) >= self.write_bytes:
                    await to_thread.run_sync(sink.write, block)
                    block.clear()
        except ClientDisconnect:
            await to_thread.run_sync(sink.write, block)  # keep what arrived: resume from it
            raise
        await to_thread.run_sync(sink.write, block)


def _signature(s: Signs) -> Finding | None:
    """Request bodies held whole in memory: the peak RSS rises (Signs.peak_memory)
    on small answers, with no database work that could explain it."""
    if (s.number("bytes_per_request") or 0.0) >= 1e6 or (
        s.number("db_queries_per_request") or 0.0
    ) >= 0.5:
        return None
    score = s.peak_memory()
    return finding(
        "upload-in-memory",
        score,
        (Clue("peak RSS rise under load", s.number("peak_rss_growth_mb"), "< 100", "MB"),),
        confirm="profile=memray",
    )


SCENARIO: Scenario[UploadReceiver, UploadParams] = Scenario(
    signature=_signature,
    slug="upload-in-memory",
    title="A 500 MB upload read into memory before it reaches the disk",
    seeds=(5, 28),
    kind="fault",
    summary=(
        "A client uploads a 500 MB video. Read whole with `await request.body()` (or "
        "`await file.read()`), it costs the app over 500 MB of RSS per upload, the size cap "
        "acts only once it is all in, and a dropped connection starts the upload over. "
        "Streamed to disk a block at a time, RSS stays flat, an oversized upload is refused "
        "at the byte that crosses the cap, and an interrupted upload resumes from its offset."
    ),
    faulty=BufferedUpload,
    fixed=StreamedUpload,
    params=UploadParams,
    workload="uploads",
    default_load={"users": 1, "duration": "30s"},
    profile_hint="memory",
    symptom=Symptom(
        metric="peak_rss_growth_mb",
        op=">",
        # Half the workload's 500 MB upload: a body that went through memory
        # whole (the faulty variant holds it twice, ~1 GB) is far above; a
        # streamed one (one 1 MiB block and the server's 64 KiB buffer) far below.
        threshold=256.0,
        description="the app's peak RSS rises by more than half the size of the upload",
    ),
    diagnosis="""\
**What you see.** Each upload lifts the app's peak RSS by about twice its size
(report: `peak_rss_growth_mb`, the kernel's high-water mark, which a 1 s RSS
sample can miss; the RSS plot shows a spike per upload). Two 500 MB uploads at
once, or one 2 GB video, and a 1 GB container is OOM-killed. The size cap
answers 413 only after the whole body has been received and held; a client
whose connection drops at 90% starts again from zero.

**Find it.** `make fault=upload-in-memory load` (one user PUTs a 500 MB body,
`LAB_UPLOAD_MB=2000 UPLOAD_MAX_BYTES=2500000000` for the 2 GB video, which the
default 1 GiB cap would refuse) then
`make fault=upload-in-memory fixed=1 load`. For the allocation site:
`lab run upload-in-memory --profile memray`; the report's table is the leaks
view, empty here (the body is freed after each request), so ask for the peak:
`.venv/bin/python -m memray summary -s 3 RUN/profile/memray.bin` (or
`memray flamegraph` without `--leaks`) names `body` in starlette/requests.py,
1.05 GB at the high-water mark: half the chunks uvicorn's `receive` handed
over, half `b"".join(chunks)`. The event loop stalls while that 500 MB join
runs (`event_loop_lag_p99_ms`). In code review, look for
`await request.body()`, `await file.read()` with no size, `bytes = File()` and
`bytes = Body()` on an upload route.

**Why streaming.** `async for chunk in request.stream()` hands the body over
as it arrives (uvicorn buffers 64 KiB and stops reading the socket beyond
that, so a slow disk slows the client instead of filling memory). Write each
block to a temporary file in the upload directory (`anyio.to_thread` for the
disk), hash as you go, and rename it into place at the end (atomic, so no
reader sees half a file). Memory is one block whatever the size of the
upload. The cap is enforced twice: up front on `Content-Length` (413 before
reading a byte; with `Expect: 100-continue`, as curl sends, the client does
not even send the body), and on the byte that crosses it while streaming,
since a chunked body has no length. The proxy's limit (nginx
`client_max_body_size`) is the first line; uvicorn has no body size limit.

**Interrupted uploads: resume, don't restart** (the tus protocol, core).
`POST /uploads` with `Upload-Length: N` answers `201 Location: /uploads/ID`.
The client `PATCH`es the bytes with `Upload-Offset: 0`; when the connection
drops, the server keeps what it received (the fixed variant writes it before
the `ClientDisconnect` propagates), `HEAD /uploads/ID` answers
`Upload-Offset: k`, and the client sends only bytes k..N with
`Upload-Offset: k`. A wrong offset is a 409, as is a second PATCH while one
is still writing (an exclusive lock per upload), so a retry can never
corrupt the file; the client asks `HEAD` again. State is on disk, so any
worker can take the next PATCH. The faulty variant reads the PATCH body
whole before writing: an interrupted PATCH leaves offset 0. For very large
files, S3 multipart or pre-signed uploads take the bytes off the app
altogether.

**JSON and a file together (seed 28).** `multipart/form-data` with a JSON
field and a file part: FastAPI's `UploadFile` (python-multipart) spools a file
part to a temporary file past 1 MB, and Starlette caps non-file fields at
1 MB, 1,000 fields and 1,000 files (`request.form(max_part_size=...,
max_fields=..., max_files=...)`); but `await upload.read()` still pulls the
whole file into memory: copy it with `shutil.copyfileobj` or read it in
chunks. Parsing multipart also costs CPU per byte; for big files, send the
metadata as JSON first (or in headers, as tus' `Upload-Metadata`) and the file
as a raw body, as this lab's routes do. Validate the type from the content:
the first bytes (magic numbers: `ftyp` at offset 4 for MP4, `\\x1aE\\xdf\\xa3`
for Matroska/WebM, `%PDF-`, `\\x89PNG`), checked on the first chunk while
streaming, not the client's `Content-Type` or file name; names are the
server's to choose (no path from the client).

**Measured:** the page's Measured block and the answers above give the latest
`lab prove upload-in-memory` numbers (peak RSS growth, time per upload, event-loop
lag). An interrupted 8 MiB PATCH, cut after 3 MiB: fixed resumes from the offset
HEAD gives and sends only the rest, and the assembled file's sha256 matches;
faulty is back at offset 0 (tests/integration/test_uploads.py).
""",
    answers=(
        Answer(
            question=(
                "Your client uploads a 2GB video. How do you handle large file uploads in FastAPI?"
            ),
            answer="""\
Never hold the body in memory. Stream it to disk in blocks, enforce the size
cap while streaming, and make the upload resumable.

The fixed variant (`StreamedUpload`) works like this:

- It reads `async for chunk in request.stream()` and writes a `write_kb` block
  at a time to a temporary file, through `anyio.to_thread`, hashing as it goes.
- At the end it renames the file into place, so no reader sees half a file.
- It refuses early: a 413 on the `Content-Length`, and a 413 on the byte that
  crosses the cap, since a chunked body has no length.
- It accepts resumable uploads, the tus core protocol (next answers).

At 2 GB, better still is to keep the bytes off the app altogether: pre-signed
S3 multipart uploads, with the app issuing URLs and recording completion.

`make fault=upload-in-memory compare` sends 500 MB bodies from one user.
Setting `LAB_UPLOAD_MB=2000 UPLOAD_MAX_BYTES=2500000000` makes it the 2 GB
video.

- Peak RSS growth, the kernel's high-water mark: {faulty.peak_rss_growth_mb} MB
  when read whole, against {fixed.peak_rss_growth_mb} MB streamed.
- Event-loop lag p99: {faulty.event_loop_lag_p99_ms} ms against
  {fixed.event_loop_lag_p99_ms} ms.
- Time per upload (p50): {faulty.p50_ms} ms against {fixed.p50_ms} ms.

For the allocation site, run `make fault=upload-in-memory profile=memray load`,
then `memray summary` on the run's `profile/memray.bin` (see the diagnosis).
""",
        ),
        Answer(
            question="Why use streaming instead of saving directly?",
            answer="""\
"Saving directly" usually means `data = await file.read()` (or
`await request.body()`, `bytes = File()`) and then writing `data`. The memory
is then the size of the upload, times the concurrent uploads. Starlette's
`b"".join` even holds it twice for a moment: the faulty variant's peak RSS rose
{faulty.peak_rss_growth_mb} MB for one upload at a time. Two uploads at once,
or one 2 GB file, and a 1 GB container is OOM-killed.

Reading the whole body has three other costs:

- The join runs on the event loop and stalls every other request (lag p99
  {faulty.event_loop_lag_p99_ms} ms against {fixed.event_loop_lag_p99_ms} ms).
- The size cap can act only after the whole body has arrived.
- A dropped connection loses everything received.

Streaming keeps memory at one block: {fixed.peak_rss_growth_mb} MB of peak
growth. It also gives backpressure: uvicorn buffers about 64 KiB and stops
reading the socket until the app consumes it, so a slow disk slows the client
instead of filling RAM. `UploadFile` spools to a temporary file past 1 MB, but
`await upload.read()` reads it all back into memory. Copy it in chunks
instead (`shutil.copyfileobj`).
""",
        ),
        Answer(
            question="How do you handle upload interruption?",
            answer="""\
Resume rather than restart. The app speaks the core of the tus protocol:

1. `POST /uploads` with `Upload-Length: N` answers 201 with a `Location`.
2. `PATCH` appends bytes from `Upload-Offset`.
3. After a dropped connection, `HEAD` answers the `Upload-Offset` on disk, and
   the client sends only the rest.

The fixed variant writes what arrived before the `ClientDisconnect`
propagates, so those bytes count. A wrong offset, or a second `PATCH` while one
is still writing (an exclusive lock per upload), gets a 409, so a retry cannot
corrupt the file. The state lives on disk, so any worker can take the next
`PATCH`. To survive several instances, the state must be on shared storage or
S3 multipart.

The faulty variant reads each `PATCH` whole before writing, so an interrupted
one leaves offset 0.

tests/integration/test_uploads.py proves this. It cuts an 8 MiB `PATCH`
after 3 MiB. The fixed variant resumes from the offset `HEAD` gives, and the
assembled file's sha256 matches. The faulty one is back at 0. A load run does
not measure it, so summary.json has no number for it.
""",
        ),
        Answer(
            question="Upload JSON + file together. How do you parse it in FastAPI?",
            answer="""\
One request body cannot be both JSON and a file, so send
`multipart/form-data`: one text part holding the JSON, one file part. In
FastAPI, which needs `python-multipart` for this:
`metadata: Annotated[str, Form()], file: UploadFile`. Then validate the JSON
with Pydantic, `Meta.model_validate_json(metadata)`, and answer 422 when it
fails. If the metadata is flat, a form model (`Annotated[Meta, Form()]`) takes
the fields as separate form fields instead.

For big files, send the metadata first as JSON (or in headers, as tus'
`Upload-Metadata` does) and the file as a raw streamed body. That is this
lab's design, and why the lab does not measure multipart parsing: its upload
routes take raw bodies. The numbers on this page, peak RSS growth of
{faulty.peak_rss_growth_mb} MB against {fixed.peak_rss_growth_mb} MB, apply
just the same to a file part read with `await upload.read()`.
""",
        ),
        Answer(
            question="What are form-data limits?",
            answer="""\
Starlette, and so FastAPI, caps `request.form()` by default at:

- 1,000 files (`max_files`);
- 1,000 fields (`max_fields`);
- 1 MiB for each non-file part (`max_part_size`).

A route that parses the form itself can pass other values. File parts have no
size cap. They spool to a temporary file past 1 MB, so a huge part fills the
disk rather than memory.

Neither uvicorn nor Starlette limits the total body. Set that limit at the
proxy (nginx `client_max_body_size`, 1 MB by default), and in the app check
the `Content-Length` and count the bytes as they stream, as the fixed variant
does against `UPLOAD_MAX_BYTES`.

The lab measures none of the multipart limits: its routes take raw bodies.
""",
        ),
        Answer(
            question="How to validate file type?",
            answer="""\
Trust the content, not the client. `Content-Type` and the file name are
whatever the client says. Check the magic bytes on the first chunk while
streaming:

- `ftyp` at offset 4 for MP4 and MOV;
- `1A 45 DF A3` for Matroska and WebM;
- `%PDF-` for PDF;
- `89 50 4E 47` for PNG.

A maintained library does the same with a table (`filetype`, or `python-magic`
on libmagic). Refuse with 415 before writing further.

For images, re-encode them (Pillow) to drop whatever else the file carries.
Choose stored names on the server, and never build a path from the client's
name.

This scenario does not test type checks. The upload-validation scenario
(issue "Security") will prove them with real exploit files.
""",
        ),
    ),
)
