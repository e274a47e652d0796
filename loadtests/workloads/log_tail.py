"""Operators following the server's live log, over SSE and over WebSockets.

Two kinds of user:

- **Followers**, nearly all of them, half on each transport: each opens the
  live log once (`GET /logs/live`, an SSE stream; or `WS /logs/live`) and reads
  it for the rest of the run, discarding what it reads: the connected clients
  whose cost the run measures. Opening is a request in the run's records
  (`SSE /logs/live`, `WS /logs/live`: until the stream is open); a stream that
  breaks before the run ends is a failure of `SSE stream` / `WS stream`.
- **Writers**, WRITERS_PER_TRANSPORT on each transport: each follows the log
  too, and once every WRITE_EVERY_S (constant pacing: the same lines per second
  whatever the variant), at a random moment of that period, asks for a product
  with a request id of its own (`X-Request-ID`), then waits up to LINE_WAIT_S
  for that request's access-log line on its stream. The random moment matters:
  a writer that asked right after its last line arrived would ask in step with
  a polling feed's cycle, and measure its worst case every time. `SSE log line`
  / `WS log line` is that wait, from the answer to the line's arrival, timed
  here; it fails when the line did not come.

Both need the operator's token, which the runner hands to Locust
(LAB_ADMIN_TOKEN) as it hands it to the app. LAB_LOG_TRANSPORT=sse or ws keeps
the users of one transport only (the bench's per-transport points); the
default, both, splits them.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator

import gevent
import requests
import websocket
from gevent.event import Event
from locust import FastHttpUser, constant, constant_pacing, task
from locust.runners import STATE_RUNNING, STATE_SPAWNING

__all__ = [
    "LINE_WAIT_S", "TRANSPORTS", "USERS", "WRITERS_PER_TRANSPORT",
    "SseFollower", "SseWriter", "WsFollower", "WsWriter",
]  # fmt: skip

PRODUCTS = max(int(os.environ.get("LAB_SEED_ROWS", "10000")), 1)
LINE_WAIT_S = float(os.environ.get("LAB_LINE_WAIT_S", "3"))
WRITERS_PER_TRANSPORT = 4
WRITE_EVERY_S = 2.0
# Longer than FastAPI's SSE keep-alive (a comment every 15 s) and uvicorn's
# WebSocket pings (every 20 s): an idle stream is not a dead one.
READ_TIMEOUT_S = 30.0
PATH = "/logs/live"


def _token() -> str:
    return os.environ.get("LAB_ADMIN_TOKEN", "")


class _Stream(FastHttpUser):
    """A user holding one live-log stream, read by a greenlet of its own."""

    abstract = True
    transport = ""

    def on_start(self) -> None:
        self.waiting: dict[str, Event] = {}
        self.arrived: dict[str, float] = {}
        self.reader: gevent.Greenlet[..., None] | None = None
        self._open()

    def on_stop(self) -> None:
        if self.reader is not None:
            self.reader.kill(block=False)
        self._close()

    def _record(
        self, name: str, started: float, exception: Exception | None = None,
        ended: float | None = None,
    ) -> None:  # fmt: skip
        ended = time.perf_counter() if ended is None else ended
        self.environment.events.request.fire(
            request_type=self.transport, name=name,
            response_time=max(ended - started, 0.0) * 1000,
            response_length=0, exception=exception, context={},
        )  # fmt: skip

    def _open(self) -> None:
        started = time.perf_counter()
        try:
            lines = self._connect()
        except Exception as exc:
            self._record(PATH, started, exc)
            self.reader = None
            return
        self._record(PATH, started)
        self.reader = gevent.spawn(self._read, lines)

    def _read(self, lines: Iterator[str]) -> None:
        try:
            for text in lines:
                if self.waiting:  # a writer: is it the line of one of its requests?
                    self._notice(text)
        except Exception as exc:
            self._broken(exc)
            return
        self._broken(ConnectionError("the stream ended"))

    def _broken(self, exc: Exception) -> None:
        """A stream that ends while the load runs is a failure; one closed by the stop is not."""
        runner = self.environment.runner
        if runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING):
            self._record("stream", time.perf_counter(), exc)

    def _notice(self, text: str) -> None:
        for request_id, event in list(self.waiting.items()):
            if request_id in text:
                self.arrived[request_id] = time.perf_counter()
                event.set()

    def _connect(self) -> Iterator[str]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class _Sse(_Stream):
    abstract = True
    transport = "SSE"

    def _connect(self) -> Iterator[str]:
        # requests, not FastHttpUser's client: with chunk_size=None urllib3 yields each
        # chunk of the chunked response as it arrives, and each SSE event is one chunk.
        self.session = requests.Session()
        response = self.session.get(
            f"{self.host}{PATH}", stream=True, timeout=(10, READ_TIMEOUT_S),
            headers={"Authorization": f"Bearer {_token()}", "Accept": "text/event-stream"},
        )  # fmt: skip
        response.raise_for_status()
        self.response = response
        return (chunk.decode(errors="replace") for chunk in response.iter_content(None))

    def _close(self) -> None:
        if hasattr(self, "response"):
            self.response.close()
            self.session.close()


class _Ws(_Stream):
    abstract = True
    transport = "WS"

    def _connect(self) -> Iterator[str]:
        url = (self.host or "").replace("http", "ws", 1) + PATH
        self.socket = websocket.create_connection(
            url, timeout=READ_TIMEOUT_S, header=[f"Authorization: Bearer {_token()}"]
        )
        return self._messages()

    def _messages(self) -> Iterator[str]:
        while True:
            message = self.socket.recv()
            if not message:  # the server closed the socket
                return
            yield message if isinstance(message, str) else message.decode(errors="replace")

    def _close(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()


class _Follower(_Stream):
    """Holds its stream for the whole run; its task only keeps the user alive."""

    abstract = True
    weight = 1
    wait_time = constant(1.0)

    @task
    def keep_following(self) -> None:
        if self.reader is None or self.reader.dead:
            gevent.sleep(1.0)  # a failed open is recorded; a second try would add nothing
        else:
            self.reader.join(timeout=5.0)


class _Writer(_Stream):
    """Makes one request per WRITE_EVERY_S and waits for its line on its own stream."""

    abstract = True
    fixed_count = WRITERS_PER_TRANSPORT
    wait_time = constant_pacing(WRITE_EVERY_S)

    @task
    def request_and_watch(self) -> None:
        if self.reader is None or self.reader.dead:
            self._open()
            return
        gevent.sleep(random.uniform(0.0, WRITE_EVERY_S / 2))
        request_id = f"lt-{uuid.uuid4().hex[:16]}"
        arrival = self.waiting[request_id] = Event()
        try:
            with self.client.get(
                f"/products/{random.randint(1, PRODUCTS)}", name="/products/{id}",
                headers={"X-Request-ID": request_id}, catch_response=True,
            ) as response:  # fmt: skip
                if response.status_code != 200:
                    response.failure(f"{response.status_code}: {response.text[:200]}")
                    return
            answered = time.perf_counter()
            if arrival.wait(timeout=LINE_WAIT_S):
                # The reader noted the arrival before it set the event; a line read
                # before this greenlet saw its answer counts as 0 ms.
                self._record("log line", answered, ended=self.arrived[request_id])
            else:
                self._record("log line", answered,
                             TimeoutError(f"{request_id}: its log line did not come"))  # fmt: skip
        finally:
            self.waiting.pop(request_id, None)
            self.arrived.pop(request_id, None)


class SseFollower(_Follower, _Sse):
    pass


class WsFollower(_Follower, _Ws):
    pass


class SseWriter(_Writer, _Sse):
    pass


class WsWriter(_Writer, _Ws):
    pass


TRANSPORTS: dict[str, list[type[_Stream]]] = {
    "sse": [SseFollower, SseWriter],
    "ws": [WsFollower, WsWriter],
}
_transport = os.environ.get("LAB_LOG_TRANSPORT", "both")
if _transport not in (*TRANSPORTS, "both"):
    raise SystemExit(f"LAB_LOG_TRANSPORT={_transport!r}: use sse, ws or both")
USERS = TRANSPORTS[_transport] if _transport != "both" else [*TRANSPORTS["sse"], *TRANSPORTS["ws"]]
