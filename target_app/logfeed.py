"""The live log's source: a logging handler that hands each formatted line to the feed.

It sits on the root logger next to the stdout handler, formats the record the
same way (one JSON line, with the request's id when there is one), and calls
the sse-logs seam's `publish` (faults/sse_logs.py), whichever variant is on.
GET and WS /logs/live (api/routes/logs.py) stream what the feed holds.
"""

from __future__ import annotations

import logging

from faults import FaultRuntime, sse_logs
from target_app.observability import JsonFormatter

__all__ = ["LogFeedHandler"]


class LogFeedHandler(logging.Handler):
    def __init__(self, runtime: FaultRuntime) -> None:
        super().__init__()
        self.runtime = runtime
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.runtime.pick(sse_logs.SCENARIO).publish(self.format(record))
        except Exception:  # a log line must never fail the code that logged it
            self.handleError(record)
