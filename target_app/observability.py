"""Per-request context: request id, time split (db / upstream / app), JSON logs.

The middleware is plain ASGI (not BaseHTTPMiddleware) because it sits on every
request and the benchmark holds it to >= 95% of the bare app's throughput.

The request's `RequestTiming` lives in a contextvar. Sync routes run in the
threadpool with a copy of the context, and the object is shared (not copied),
so the DB hooks (target_app/db.py), run in a worker thread, add to the right request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter, Histogram

from target_app import metrics

__all__ = [
    "JsonFormatter",
    "MetricsMiddleware",
    "RequestTiming",
    "UpstreamCall",
    "configure_logging",
    "current_timing",
    "event_loop_lag_monitor",
    "measure_upstream",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("target_app.request")


@dataclass
class RequestTiming:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    db_seconds: float = 0.0
    db_queries: int = 0
    upstream_seconds: float = 0.0

    def server_timing(self, total: float) -> str:
        app = max(total - self.db_seconds - self.upstream_seconds, 0.0)
        return (
            f'db;dur={self.db_seconds * 1000:.2f};desc="{self.db_queries} queries", '
            f"upstream;dur={self.upstream_seconds * 1000:.2f}, "
            f"app;dur={app * 1000:.2f}, total;dur={total * 1000:.2f}"
        )


_timing: ContextVar[RequestTiming | None] = ContextVar("request_timing", default=None)


def current_timing() -> RequestTiming | None:
    return _timing.get()


@dataclass
class UpstreamCall:
    """One measured call to a dependency; its caller says how it ended.

    `outcome` is the `outcome` label of upstream_request_duration_seconds:
    "ok", "http_<status>", the transport error's class name, or whatever the
    caller calls a call that raised before any answer ("error" by default).
    """

    outcome: str = "error"


@contextlib.contextmanager
def measure_upstream(dependency: str) -> Iterator[UpstreamCall]:
    """Time the `with` block as one call to `dependency`, however it ends.

    The time goes to upstream_request_duration_seconds{dependency, outcome}
    and to the request's `upstream` share (Server-Timing, the slow-request
    log line). Every client of a third party measures its calls with this,
    so that the dashboards' and reports' upstream numbers mean one thing.
    """
    call = UpstreamCall()
    started = time.perf_counter()
    try:
        yield call
    finally:
        elapsed = time.perf_counter() - started
        metrics.UPSTREAM_REQUEST_DURATION.labels(dependency, call.outcome).observe(elapsed)
        timing = _timing.get()
        if timing is not None:
            timing.upstream_seconds += elapsed


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Formatted once per record: the stdout handler and the live log's handler
        # (target_app/logfeed.py) both call this, in the same context.
        done: str | None = getattr(record, "_lab_json", None)
        if done is None:
            done = record._lab_json = self._format(record)
        return done

    def _format(self, record: logging.LogRecord) -> str:
        timing = _timing.get()
        entry: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if timing is not None:
            entry["request_id"] = timing.request_id
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, slow_ms: float = 1000.0, access_log: bool = False) -> None:
        self.app = app
        self.slow_seconds = slow_ms / 1000
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        timing = RequestTiming(request_id)
        token = _timing.set(timing)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                total = time.perf_counter() - timing.started
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"server-timing", timing.server_timing(total).encode()))
                message["headers"] = headers
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - timing.started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            _requests_child(scope["method"], route_path, status).inc()
            _duration_child(route_path).observe(elapsed)
            if route_path != "/metrics":
                metrics.DB_QUERIES_PER_REQUEST.observe(timing.db_queries)
            if self.access_log and route_path != "/metrics":
                # Logged here, with the request's id in the context: the JSON line
                # carries it (JsonFormatter), and the live log's clients find it.
                log.info("request", extra={"fields": {
                    "method": scope["method"], "route": route_path, "status": status,
                    "duration_ms": round(elapsed * 1000, 2)}})  # fmt: skip
            if status >= 500 or elapsed >= self.slow_seconds:
                log.warning(
                    "slow or failed request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "route": route_path,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                            "db_ms": round(timing.db_seconds * 1000, 2),
                            "db_queries": timing.db_queries,
                            "upstream_ms": round(timing.upstream_seconds * 1000, 2),
                        }
                    },
                )
            _timing.reset(token)


# prometheus-client's `labels()` validates and locks on every call; the label
# sets are few (routes x methods x statuses), so each child is looked up once
# (bounded all the same: clients choose the method).
@functools.lru_cache(maxsize=1024)
def _requests_child(method: str, route: str, status: int) -> Counter:
    return metrics.HTTP_REQUESTS.labels(method, route, str(status))


@functools.lru_cache(maxsize=1024)
def _duration_child(route: str) -> Histogram:
    return metrics.HTTP_REQUEST_DURATION.labels(route)


# Unique across workers and restarts, and far cheaper than uuid4 (which py-spy
# showed at 3% of a worker's samples): start time and pid (read per call, so a
# preloaded-then-forked worker gets its own), then a counter.
_ID_START = f"{int(time.time()):x}"
_ID_COUNTER = itertools.count(1)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and 0 < len(value) <= 128:
            return str(value.decode("latin-1"))
    return f"{_ID_START}{os.getpid():x}-{next(_ID_COUNTER):x}"


async def event_loop_lag_monitor(interval: float = 0.05) -> None:
    """Sleep `interval` over and over; whatever comes on top is the loop's lag.

    A blocking call in an `async def` route shows here long before it shows in
    CPU profiles: the loop could not run this callback on time.
    """
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + interval
        await asyncio.sleep(interval)
        metrics.EVENT_LOOP_LAG.observe(max(loop.time() - expected, 0.0))


@contextlib.asynccontextmanager
async def running_lag_monitor() -> Any:
    task = asyncio.create_task(event_loop_lag_monitor())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
