"""sse-logs (seed 32): the server's live log, streamed to operators over SSE and WebSockets.

A pattern scenario: "the client wants real-time logs from the server". The app
keeps its JSON log lines (the access log: one line per request, and whatever
else it logs) in a feed, and streams them on `GET /logs/live` (Server-Sent
Events, FastAPI's own `EventSourceResponse`) and `WS /logs/live` (a WebSocket);
target_app/api/routes/logs.py. Both transports read the same seam, so each
variant is measured on both.

Seam: `LogFeed`. A logging handler on the root logger (target_app/logfeed.py)
hands it every formatted line with `publish`; each client's stream is
`follow(after)`: the lines after the client's last event id (SSE's
`Last-Event-ID` on a reconnect), then every new one.

The faulty variant is the tutorials' stream: the lines in a list, and every
client in a loop that looks for new ones and sleeps for `poll_seconds` (one
second, a "reasonable" poll) when there are none. It works, and it is not
live: a line waits on average half a poll before any client sees it, and
every connected client costs a wake-up per poll whether or not anything was
logged. The list is never trimmed either: it holds every line since start-up.

The fixed variant pushes. A publisher appends the line to a bounded replay
buffer (the last `replay_lines`, for reconnecting clients) and puts it in
each client's own bounded queue; a client's stream awaits its queue, so an
idle client costs nothing until a line comes, and a line reaches every client
as soon as the event loop runs. A client that reads slower than the log is
written (a stalled tab, a slow link) loses its oldest unread lines, counted in
a gap event, instead of growing the server's memory. A client is removed in a
`finally`, however its stream ended. Lines logged from a threadpool thread
are handed to the event loop with `call_soon_threadsafe`: asyncio's queues are
not thread-safe.

What this measures, and how (tests/scenarios/test_sse_logs.py): how long a
request's own access-log line takes to reach a client that is following the
log (the load's `SSE log line` and `WS log line` requests: from the request's answer to the line's
arrival on the client's stream, timed by the client), with about a thousand
clients connected; and the app process's CPU and RSS with them (the runner's
sampler, from /proc). The bench part `log-transports` connects 0 to 2,000
idle clients of each transport to the fixed variant and measures what each
thousand costs: the answer to "which scales better".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Scenario, Symptom

__all__ = [
    "LIVE_MS",
    "SCENARIO",
    "Batch",
    "Gap",
    "LogFeed",
    "LogFeedParams",
    "LogLine",
    "PolledList",
    "PushedQueues",
]

# The requirement the symptom stands for: a live log shows a line while the
# person watching is still looking at what caused it. 100 ms is the usual bound
# of an interface that feels instantaneous (Nielsen's response-time limits);
# half the requests' lines arriving later than that is not a live log.
LIVE_MS = 100.0


@dataclass(frozen=True)
class LogLine:
    """One formatted log line (a JSON object) and its position in the feed (the SSE id).

    One object per line, shared by every client's stream: its wire forms are
    encoded once, on first use, not once per client.
    """

    seq: int
    text: str

    @functools.cached_property
    def sse(self) -> bytes:
        """The line as one Server-Sent Event: `data: <json>` and `id: <seq>`."""
        return f"data: {self.text}\nid: {self.seq}\n\n".encode()

    @functools.cached_property
    def ndjson(self) -> str:
        """The line as one line of a WebSocket message: `{"id": seq, "line": {...}}`."""
        return f'{{"id":{self.seq},"line":{self.text}}}'


@dataclass(frozen=True)
class Gap:
    """Lines this client lost because it read slower than the log was written."""

    lost: int

    @property
    def sse(self) -> bytes:
        return f'event: gap\ndata: {{"lost":{self.lost}}}\n\n'.encode()

    @property
    def ndjson(self) -> str:
        return f'{{"gap":{self.lost}}}'


# What one wake-up of a client's stream hands the transport: the items to send in
# one write; empty when nothing came for `idle_s` (the transport's keep-alive then).
Batch = list[LogLine | Gap]


class LogFeedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # faulty: how long a client's loop sleeps when it found no new line.
    poll_seconds: float = Field(1.0, gt=0.0, le=10.0)
    # fixed: the lines kept for reconnecting clients (`Last-Event-ID`), and how
    # many unread lines one client may have before its oldest are dropped.
    replay_lines: int = Field(1000, ge=1, le=100_000)
    client_backlog: int = Field(1000, ge=1, le=100_000)


class LogFeed(Protocol):
    """The seam: where the app's log lines go, and how each client's stream reads them."""

    def publish(self, text: str) -> None:
        """Add one formatted line. Called by a logging handler, from any thread."""
        ...

    def follow(self, after: int | None, idle_s: float) -> AsyncGenerator[Batch, None]:
        """One client's stream: the kept lines after seq `after` (a reconnecting client's
        last event id; None: none of the past), then the new lines as they come, as
        batches the transport sends in one write each; an empty batch after `idle_s`
        without any. The caller closes the generator when the client is gone."""
        ...


# --- faulty -----------------------------------------------------------------


class PolledList:
    """Every line in a list; every client polls it."""

    def __init__(self, params: LogFeedParams) -> None:
        self.poll_seconds = params.poll_seconds
        self.lines: list[str] = []  # list.append is atomic: any thread may publish

    def publish(self, text: str) -> None:
        self.lines.append(text)

    async def follow(self, after: int | None, idle_s: float) -> AsyncGenerator[Batch, None]:
        # seq n is self.lines[n - 1]: the list is the whole log since start-up.
        cursor = len(self.lines) if after is None else min(max(after, 0), len(self.lines))
        idle = 0.0
        while True:
            if cursor < len(self.lines):
                new = self.lines[cursor:]
                yield [LogLine(cursor + i + 1, text) for i, text in enumerate(new)]
                cursor += len(new)
                idle = 0.0
            elif idle >= idle_s:
                yield []
                idle = 0.0
            await asyncio.sleep(self.poll_seconds)
            idle += self.poll_seconds


# --- fixed ------------------------------------------------------------------


class _Follower:
    """One client's unread lines, bounded: a slow reader drops its oldest."""

    def __init__(self, backlog: int) -> None:
        self.unread: deque[LogLine] = deque(maxlen=backlog)
        self.lost = 0
        self.ready = asyncio.Event()

    def put(self, line: LogLine) -> None:
        if len(self.unread) == self.unread.maxlen:
            self.lost += 1  # the deque drops the oldest as the new one goes in
        self.unread.append(line)
        self.ready.set()


class PushedQueues:
    """A bounded replay buffer, and a bounded queue per client that the publisher fills."""

    def __init__(self, params: LogFeedParams) -> None:
        self.backlog = params.client_backlog
        self.recent: deque[LogLine] = deque(maxlen=params.replay_lines)
        self.followers: set[_Follower] = set()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # seq order = replay order, whichever thread logs
        self._loop: asyncio.AbstractEventLoop | None = None

    def publish(self, text: str) -> None:
        with self._lock:
            line = LogLine(next(self._seq), text)
            self.recent.append(line)
        loop = self._loop
        if loop is None or not self.followers:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fan_out(line)
        else:  # a threadpool thread (a sync route, a DB hook): the loop owns the queues
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody follows
                loop.call_soon_threadsafe(self._fan_out, line)

    def _fan_out(self, line: LogLine) -> None:
        for follower in self.followers:
            follower.put(line)

    async def follow(self, after: int | None, idle_s: float) -> AsyncGenerator[Batch, None]:
        self._loop = asyncio.get_running_loop()
        follower = _Follower(self.backlog)
        # Registered before the replay is read: a line published in between is in
        # both, and the seq check below sends it once.
        self.followers.add(follower)
        try:
            last = after if after is not None else (self.recent[-1].seq if self.recent else 0)
            if after is not None:
                replay = [line for line in list(self.recent) if line.seq > last]
                if replay:
                    last = replay[-1].seq
                    yield list[LogLine | Gap](replay)
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the wait in
                    # a task of its own, one more task per client for every line.
                    async with asyncio.timeout(idle_s):
                        await follower.ready.wait()
                except TimeoutError:
                    yield []
                    continue
                follower.ready.clear()
                batch: Batch = []
                if follower.lost:
                    batch.append(Gap(follower.lost))
                    follower.lost = 0
                while follower.unread:
                    line = follower.unread.popleft()
                    if line.seq > last:
                        last = line.seq
                        batch.append(line)
                if batch:
                    yield batch
        finally:  # a disconnect, a cancelled stream, a server shutdown alike
            self.followers.discard(follower)


SCENARIO: Scenario[LogFeed, LogFeedParams] = Scenario(
    slug="sse-logs",
    title="Live server logs over SSE and WebSockets: polled by every client vs pushed",
    seeds=(32,),
    kind="pattern",
    summary=(
        "GET /logs/live (SSE) and WS /logs/live stream the app's log lines. Faulty: a list "
        "that every client's loop polls once a second, so a line arrives about half a "
        "second late and the list grows forever. Fixed: each line pushed to a bounded "
        "queue per client (slow readers drop their oldest lines) with a bounded replay "
        "for Last-Event-ID; the bench measures memory and CPU per 1,000 clients of each "
        "transport."
    ),
    faulty=PolledList,
    fixed=PushedQueues,
    params=LogFeedParams,
    workload="log_tail",
    # About a thousand followers (the seed's "which scales better" is per 1,000
    # clients), plus the few users whose requests make the lines (fixed_count).
    default_load={"users": 1000, "duration": "40s"},
    # The access log (one line per request) is what the operators follow.
    app_env={"ACCESS_LOG": "true"},
    symptom=Symptom(
        # Each `log line` request is one of the load's own requests whose access-log
        # line was awaited on a stream: from the request's answer to the line's
        # arrival at the client.
        metric="p50_ms",
        route="SSE log line",
        op=">",
        threshold=LIVE_MS,
        description="log lines reach the clients that follow the log late",
    ),
    answers=(
        Answer(
            "Client wants real-time logs from server. How do you implement it?",
            """\
Push each line to the clients that follow the log; never make each client poll. The app's
logging handler formats the line once and hands it to a feed (faults/sse_logs.py); each
client has a bounded queue of unread lines that its stream awaits. Over SSE the line is one
event whose `id` is its position, so a browser that reconnects sends `Last-Event-ID` and
gets what it missed from a bounded replay buffer. With about 1,000 clients
connected, a request's own log line reached the client in {fixed.symptom} ms at the median
(p50); the faulty feed, a list every client polls once a second, took {faulty.symptom} ms:
half a poll on average, whatever the server does. Protect the stream like any operator
view: the lab's feed needs the operator's token, and it carries the JSON lines the
app writes (no secrets in logs). Bound everything per client: a reader slower than the log
loses its oldest lines (it is told how many) instead of growing the server's memory. With
several workers, each worker's feed has its own lines: ship them to one place (a log
collector, or a Redis stream) and follow that. Reproduce with `make fault=sse-logs
compare`.""",
        ),
        Answer(
            "SSE vs WebSocket difference?",
            """\
SSE is one-way (server to client) over plain HTTP: `text/event-stream`, one event per
message, reconnect and `Last-Event-ID` built into the browser's `EventSource`, and it
passes through proxies and HTTP/2 like any response (mind proxy buffering: nginx needs
`X-Accel-Buffering: no`, which the lab's route sends). A WebSocket is two-way, with its
own framing after an HTTP upgrade; reconnecting and resuming are yours to write, and some
proxies need explicit upgrade support. A log, a progress bar or a notification feed
flows one way: SSE. Chat, collaborative editing or a client that sends as much as it
receives: WebSockets. Both keep one connection per client open, and both need keep-alive
traffic through idle proxies: the lab's SSE route sends FastAPI's `: ping` comment after
15 s of silence, and uvicorn pings every WebSocket every 20 s.""",
        ),
        Answer(
            "Which scales better?",
            """\
Measured, not argued: the lab's bench connected 0, 1,000 and 2,000 followers of each
transport to one uvicorn worker while the load's writers made 4 lines a second, and read
the app process's RSS and CPU (lab/bench/log_transports.py). Memory is a matter of
connections, not of the transport: SSE {curve.sse_pushed_1000_rss_per_1000_mb} MB and
WebSocket {curve.ws_pushed_1000_rss_per_1000_mb} MB per 1,000 clients (the socket, its
buffers, the stream's task and generator). CPU is a matter of sends: pushing every line to
every client cost SSE {curve.sse_pushed_1000_cpu_per_1000_cores} cores per 1,000 clients
and WebSocket {curve.ws_pushed_1000_cpu_per_1000_cores} (a likely share of the
difference: each SSE chunk is an HTTP response body, sent through the app's HTTP
middleware and chunked encoding, which a WebSocket frame skips; `lab run sse-logs --fixed
--profile py-spy` shows where the time goes). Polling once a second was cheaper at this rate
(SSE {curve.sse_polled_1000_cpu_per_1000_cores} cores per 1,000: a second of lines in one
write) and is still not a live log: its lines waited {curve.sse_polled_1000_line_p50_ms} ms
at the median against {curve.sse_pushed_1000_line_p50_ms} ms pushed. The limit of one
process is the fan-out: every line is N sends on one event loop, so at 2,000 followers
a pushed line took {curve.sse_pushed_2000_line_p50_ms} ms (SSE) and
{curve.ws_pushed_2000_line_p50_ms} ms (WebSocket) to reach the median client. Past that,
split the clients over processes (each worker streams to its own, from a shared source
such as a Redis stream or the log collector), mind the file descriptors (one per client:
`ulimit -n` is 1,024 in many shells and systemd units), and batch when the log is busy:
the fixed feed already sends everything a slow client has not read in one write.""",
        ),
    ),
    diagnosis="""\
**What you see.** The live log lags: a request's line shows up up to a second later,
whatever the load; every viewer costs a wake-up per poll even when nothing is logged,
and the feed's memory grows with every line logged since start-up.

**Find it.** `lab run sse-logs`: the `SSE log line` request's p50 in the report (how late a
request's own line reached a client); `lab run sse-logs --profile py-spy` shows the
clients' poll loops waking in `asyncio.sleep`.

**Fix.** Push: a bounded queue per client that the publisher fills and the stream awaits,
a bounded replay buffer for `Last-Event-ID`, removal in a `finally`.

**Measured.** The page's "Measured" block and the answers above carry the numbers of the
lab's latest run of both variants (`make fault=sse-logs compare`).
""",
)
