"""The server's live log: `GET /logs/live` (Server-Sent Events) and `WS /logs/live`.

The sse-logs seam's routes (faults/sse_logs.py): both transports stream what
the app logs (target_app/logfeed.py), one JSON line per event, from the same
feed. An operator's view, so both need the lab admin token (LAB_ADMIN_TOKEN,
as `Authorization: Bearer ...`); with none configured, nobody can follow.

Over SSE each line is an event whose `id` is its position in the feed: a
browser's `EventSource` that reconnects sends it back as `Last-Event-ID`, and
the stream resumes after it. A WebSocket client says where to resume with
`?after=`; each message is one or more lines, `{"id": N, "line": {...}}`, one
per line of the message. A `gap` tells a client that it read too slowly and
lost lines.

Why not FastAPI's `EventSourceResponse` with a `ServerSentEvent` per line: it
validates a pydantic model, serialises it and passes it through two tasks and
two memory streams per client per event, which with a thousand clients made
every line cost the event loop a burst long enough to delay the app's other
requests. Here each line is encoded once for every client (`LogLine.sse`) and
each wake-up of a client's stream is one write; Starlette's StreamingResponse
still ends the stream when the client disconnects, and the keep-alive comment
is FastAPI's own (`KEEPALIVE_COMMENT`, after IDLE_S of silence, as FastAPI does).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT
from starlette.websockets import WebSocketDisconnect

from faults import sse_logs
from faults.sse_logs import Batch
from target_app.api.deps import AdminDep, SeamsDep, admin_token_refusal
from target_app.api.errors import responses
from target_app.settings import Settings

__all__ = ["IDLE_S", "router"]

router = APIRouter(prefix="/logs", tags=["logs"])

SEQ_MAX = 2**63 - 1
# Seconds of silence before a keep-alive: FastAPI's SSE interval, under the idle
# timeouts of the usual proxies and load balancers (nginx 60 s, AWS ALB 60 s).
IDLE_S = 15.0
POLICY_VIOLATION = 1008  # RFC 6455: the credentials were refused
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # as FastAPI's SSE


@router.get(
    "/live",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the log, as events"},
        **responses((401, "no operator token (LAB_ADMIN_TOKEN) sent"), (403, "a wrong token"), 422),
    },
)
async def follow_log(
    seams: SeamsDep,
    _admin: AdminDep,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=SEQ_MAX)] = None,
) -> StreamingResponse:
    """The app's log lines as they are written (after `Last-Event-ID`, when sent)."""
    stream = seams.pick(sse_logs.SCENARIO).follow(last_event_id, IDLE_S)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for batch in stream:
                yield b"".join(item.sse for item in batch) if batch else KEEPALIVE_COMMENT
        finally:  # cancelled on a disconnect: the feed forgets this client now
            await stream.aclose()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


def _message(batch: Batch) -> str:
    return "\n".join(item.ndjson for item in batch)


@router.websocket("/live")
async def follow_log_ws(
    websocket: WebSocket,
    after: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """The same lines over a WebSocket: `{"id": N, "line": {...}}` or `{"gap": lost}`."""
    settings: Settings = websocket.app.state.settings
    refusal = admin_token_refusal(settings, authorization)
    if refusal is not None:  # closed before the accept: the handshake gets a 403
        await websocket.close(code=POLICY_VIOLATION, reason=str(refusal.detail)[:120])
        return
    await websocket.accept()
    # No keep-alive of ours: uvicorn pings every WebSocket (ws_ping_interval).
    stream = websocket.app.state.seams.pick(sse_logs.SCENARIO).follow(after, IDLE_S)
    # A WebSocket learns that its client left only from a receive (a send may
    # still succeed into the kernel's buffer): one task listens, and its
    # disconnect cancels the sending, however quiet the log is.
    async with anyio.create_task_group() as group:

        async def until_gone() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await websocket.receive_text()
            group.cancel_scope.cancel()

        group.start_soon(until_gone)
        try:
            async for batch in stream:
                if batch:
                    await websocket.send_text(_message(batch))
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client left while a line was being sent
        finally:
            await stream.aclose()
            group.cancel_scope.cancel()
