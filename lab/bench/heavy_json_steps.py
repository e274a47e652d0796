"""heavy-json, step by step: what each change of the fix buys on its own.

The scenario's fixed variant changes four things at once (the encoder, no
validation on the way out, streaming, compression). Here each step is one
change, measured on the same export, side by side in one run:

1. `validated_json`: the faulty variant as it ships: every row validated into
   a model, `jsonable_encoder`, then `JSONResponse` (the stdlib's json.dumps).
2. `validated_orjson`: the same, encoded by orjson instead (what
   `ORJSONResponse` does): the encoder alone.
3. `response_model`: FastAPI's own path, `response_model=list[ExportRow]`:
   validated, and written to JSON bytes by Pydantic's core (FastAPI >= 0.130
   does this without a custom response class).
4. `orjson`: orjson on the rows as they are, no validation, still one document.
5. `ndjson`: streamed NDJSON, orjson a chunk at a time (the fixed variant with
   gzip off).
6. `ndjson_gzip`: the fixed variant as it ships: Starlette's GZipMiddleware on
   the stream, level 1.

Each step runs in a fresh interpreter (`python -m lab.bench.heavy_json_steps
STEP ROWS`), so a step's peak RSS is its own and not a previous one's
leftover; the response is driven through the ASGI interface in that process
(no socket, no client parsing while it is sent): time to first and last byte,
the process's CPU time, its peak RSS growth (the kernel's high-water mark,
reset before the request) and the bytes sent. Then the body, spooled to a temp
file while it was sent, is decoded and its rows digested, so every step is
checked to return the same rows. Numbers depend on the machine: compare the
steps with each other, within one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from lab.measurements import DEFAULT_FILE, MeasurementFile, StepsMeasurement, machine_now

__all__ = [
    "SLUG", "STEPS", "StepNumbers", "bench_part", "markdown", "measure", "part_markdown",
    "rows_digest", "run_step",
]  # fmt: skip

SLUG = "heavy-json"

MB = 1024 * 1024

# name -> what changes at that step (the markdown's label)
STEPS: dict[str, str] = {
    "validated_json": "validated models, jsonable_encoder, JSONResponse (the faulty variant)",
    "validated_orjson": "the same, encoded by orjson (ORJSONResponse's render)",
    "response_model": "response_model=list[ExportRow]: FastAPI validates, Pydantic writes JSON",
    "orjson": "orjson on the rows as they are, no validation, one document",
    "ndjson": "streamed NDJSON, orjson per chunk of 2,000 rows (fixed, gzip off)",
    "ndjson_gzip": "the same through GZipMiddleware, level 1 (the fixed variant)",
}


@dataclass(frozen=True)
class StepNumbers:
    step: str
    rows: int  # rows decoded from what was sent
    first_byte_s: float  # request start -> first body byte
    last_byte_s: float  # request start -> last body byte
    cpu_s: float  # the process's CPU time (all threads) over the request
    peak_rss_growth_mb: float  # VmHWM during the request above VmRSS before it
    wire_bytes: int  # body bytes as sent (compressed where the step compresses)
    body_bytes: int  # body bytes decoded
    content_type: str
    content_encoding: str | None
    rows_sha256: str  # digest of the decoded rows (rows_digest)


def rows_digest(rows: Iterator[Any]) -> str:
    """One digest of a sequence of JSON rows, whatever document they came in."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()


# --- the steps --------------------------------------------------------------


def _app(step: str, rows: int) -> Any:
    """A FastAPI app whose GET /export is the step. Imports here: the bench's
    other parts never load the app's stack."""
    from fastapi import FastAPI, Response
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse
    from pydantic import TypeAdapter

    from faults.heavy_json import ExportParams, ExportRow, StreamedNdjson, export_rows

    models = TypeAdapter(list[ExportRow])

    def validated() -> list[ExportRow]:
        return models.validate_python(list(export_rows(rows)))

    renderers: dict[str, Callable[[], Response]] = {
        "validated_json": lambda: JSONResponse(jsonable_encoder(validated())),
        "validated_orjson": lambda: Response(
            orjson.dumps(jsonable_encoder(validated())), media_type="application/json"
        ),
        "orjson": lambda: Response(
            orjson.dumps(list(export_rows(rows)), default=str), media_type="application/json"
        ),
        "ndjson": StreamedNdjson(ExportParams(rows=rows, gzip_level=0)).render,
        "ndjson_gzip": StreamedNdjson(ExportParams(rows=rows, gzip_level=1)).render,
    }
    app = FastAPI()
    if step == "response_model":

        @app.get("/export", response_model=list[ExportRow])
        def export_model() -> Any:
            return list(export_rows(rows))

    elif step in renderers:
        render = renderers[step]

        @app.get("/export", response_model=None)
        def export() -> Response:
            return render()

    else:
        raise ValueError(f"unknown step {step!r}; the steps are {', '.join(STEPS)}")
    return app


# --- one step, in this process ----------------------------------------------

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak_rss() -> None:
    # "5" resets the kernel's VmHWM to the current RSS (Linux >= 4.0).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class _Sink:
    """The ASGI `send` of one request: times the body, spools it to a file."""

    def __init__(self, spool: IO[bytes], started: float) -> None:
        self.spool = spool
        self.started = started
        self.headers: dict[str, str] = {}
        self.status = 0
        self.wire_bytes = 0
        self.first_byte_s: float | None = None
        self.last_byte_s: float | None = None
        self.peak_kb: int | None = None
        self.done = asyncio.Event()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            if body and self.first_byte_s is None:
                self.first_byte_s = time.perf_counter() - self.started
            self.wire_bytes += len(body)
            self.spool.write(body)
            if not message.get("more_body", False):
                self.last_byte_s = time.perf_counter() - self.started
                self.peak_kb = _status_kb("VmHWM")
                self.done.set()


async def _request(app: Any, sink: _Sink, accept_encoding: str) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/export", "raw_path": b"/export",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"bench"), (b"accept-encoding", accept_encoding.encode())],
    }  # fmt: skip
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await sink.done.wait()  # a client that stays connected until the last byte
        return {"type": "http.disconnect"}

    await app(scope, receive, sink.send)


async def _warm_then_measure(
    step: str, app: Any, spool: IO[bytes], accept: str
) -> tuple[_Sink, int, float]:
    """A small export first, in the same event loop: lazy imports, schema builds and
    the loop's worker threads are then paid for, and not counted in the step's
    time or peak. Then the step's export: its sink, the RSS before it, its CPU time."""
    with tempfile.TemporaryFile() as warm_up:
        await _request(_app(step, 100), _Sink(warm_up, time.perf_counter()), accept)
    rss_before = _status_kb("VmRSS") or 0
    _reset_peak_rss()
    cpu_before = time.process_time()
    sink = _Sink(spool, time.perf_counter())
    await _request(app, sink, accept)
    return sink, rss_before, time.process_time() - cpu_before


def _decoded_rows(path: Path, content_type: str, encoding: str | None) -> Iterator[Any]:
    opener = gzip.open if encoding == "gzip" else open
    with opener(path, "rb") as handle:
        if content_type.startswith("application/x-ndjson"):
            for line in handle:
                if line.strip():
                    yield orjson.loads(line)
        else:
            yield from orjson.loads(handle.read())


def run_step(step: str, rows: int, spool_dir: Path | None = None) -> StepNumbers:
    """Build the step's app, send one export through it, measure, then check the rows."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; the steps are {', '.join(STEPS)}")
    accept = "gzip" if step == "ndjson_gzip" else "identity"
    app = _app(step, rows)
    with tempfile.NamedTemporaryFile(dir=spool_dir, suffix=".body") as spool:
        sink, rss_before, cpu_s = asyncio.run(_warm_then_measure(step, app, spool, accept))
        spool.flush()
        if sink.status != 200 or sink.last_byte_s is None:
            raise RuntimeError(f"{step}: answered {sink.status}, body incomplete")
        content_type = sink.headers.get("content-type", "")
        encoding = sink.headers.get("content-encoding")
        path = Path(spool.name)
        count, body_bytes = 0, 0

        def counted() -> Iterator[Any]:
            nonlocal count
            for row in _decoded_rows(path, content_type, encoding):
                count += 1
                yield row

        digest = rows_digest(counted())
        opener = gzip.open if encoding == "gzip" else open
        with opener(path, "rb") as handle:
            while block := handle.read(1 << 20):
                body_bytes += len(block)
    peak_kb = sink.peak_kb if sink.peak_kb is not None else rss_before
    return StepNumbers(
        step=step,
        rows=count,
        first_byte_s=sink.first_byte_s or sink.last_byte_s,
        last_byte_s=sink.last_byte_s,
        cpu_s=cpu_s,
        peak_rss_growth_mb=max(peak_kb - rss_before, 0) / 1024,
        wire_bytes=sink.wire_bytes,
        body_bytes=body_bytes,
        content_type=content_type,
        content_encoding=encoding,
        rows_sha256=digest,
    )


# --- every step, side by side -----------------------------------------------


def measure(rows: int = 250_000, steps: tuple[str, ...] = tuple(STEPS)) -> list[StepNumbers]:
    """Each step in a fresh interpreter, one after the other; the numbers of each.

    Raises if a step fails or returns other rows than the first step did.
    """
    repo = Path(__file__).resolve().parents[2]
    results: list[StepNumbers] = []
    for step in steps:
        done = subprocess.run(
            [sys.executable, "-m", "lab.bench.heavy_json_steps", step, str(rows)],
            cwd=repo, capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"heavy-json step {step} exited {done.returncode}:\n{done.stderr}")
        results.append(StepNumbers(**json.loads(done.stdout.strip().splitlines()[-1])))
    digests = {r.rows_sha256 for r in results}
    if len(digests) > 1:
        raise RuntimeError(f"the steps returned different rows: {[r.step for r in results]}")
    return results


def markdown(results: list[StepNumbers]) -> list[str]:
    """A table of the steps, the first one as the baseline of the ratios."""
    if not results:
        return []
    base = results[0]
    lines = [
        f"heavy-json step by step: {base.rows:,} rows, each step in a fresh process",
        "",
        "| step | what changes | last byte s | first byte s | CPU s | peak RSS +MB "
        "| on the wire MB | last byte vs step 1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = base.last_byte_s / r.last_byte_s if r.last_byte_s else float("nan")
        lines.append(
            f"| {r.step} | {STEPS[r.step]} | {r.last_byte_s:.3g} | {r.first_byte_s:.3g} "
            f"| {r.cpu_s:.3g} | {r.peak_rss_growth_mb:.3g} | {r.wire_bytes / MB:.3g} "
            f"| x{ratio:.3g} |"
        )
    return lines


def bench_part(
    where: Path, rows: int = 250_000, committed: Path | None = DEFAULT_FILE
) -> dict[str, Any]:
    """`lab bench`'s heavy-json-steps part: every step measured, as bench.json holds it
    (the scenario page reads it from there), and recorded in the committed file."""
    results = measure(rows)
    measured = StepsMeasurement(
        slug=SLUG,
        rows=rows,
        steps=tuple({**asdict(r), "label": STEPS[r.step]} for r in results),
        provenance=machine_now("bench (heavy-json steps)", str(where)),
    )
    if committed is not None:
        MeasurementFile.store(committed, measured)
    return measured.as_dict()


def part_markdown(part: dict[str, Any]) -> list[str]:
    """bench.md's table of the part `bench_part` returned."""
    return markdown([StepNumbers(**{k: v for k, v in step.items() if k != "label"})
                     for step in part["steps"]])  # fmt: skip


def _main(argv: list[str]) -> int:
    if len(argv) == 2:
        print(json.dumps(asdict(run_step(argv[0], int(argv[1])))))
        return 0
    if len(argv) <= 1 and all(arg.isdigit() for arg in argv):
        rows = int(argv[0]) if argv else 250_000
        print("\n".join(markdown(measure(rows))))
        return 0
    print("usage: python -m lab.bench.heavy_json_steps [STEP] [ROWS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
