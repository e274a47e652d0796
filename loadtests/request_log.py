"""Every request Locust makes, one CSV row each: `requests.csv` in the run dir.

Locust keeps percentiles in rounded buckets (to 1 ms below 100 ms, 10 ms below
1 s): a 1 ms first page and a 1.4 ms one read the same, and a ratio with such a
page below it moves by half on rounding alone. The exact times let the reports
compute a route's percentiles without that error, and give a later diagnosis
the raw series (when each request started, how long it took, what it got).

Columns: start (epoch s), name ("GET /route", Locust's request name), ms
(response time), bytes, ok (1, or 0 for a failure). Enabled by
LAB_REQUEST_LOG=<path>; the file is written through a buffer and closed when
Locust quits, so a run stopped with SIGINT keeps every row. It may hold a few
more rows than Locust's CSVs: requests that ended after Locust's last snapshot.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path
from typing import Any

from locust import events

__all__ = ["COLUMNS", "RequestLog", "install"]

COLUMNS = ("start", "name", "ms", "bytes", "ok")
log = logging.getLogger("lab.load")


class RequestLog:
    def __init__(self, path: str) -> None:
        # Closed by close() when Locust quits, not by a with-block.
        self._file = Path(path).open("w", newline="", buffering=1 << 16)  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self._failed = False

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: Exception | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        if self._failed:
            return
        try:
            self._writer.writerow(
                (
                    f"{start_time if start_time is not None else time.time():.4f}",
                    f"{request_type} {name}",
                    f"{response_time:.3f}",
                    response_length,
                    0 if exception is not None else 1,
                )
            )
        except (OSError, ValueError) as exc:  # a full disk must not stop the load
            log.warning("request log stopped: %s", exc)
            self._failed = True

    def close(self, **_: Any) -> None:
        if not self._file.closed:
            self._file.close()


def install() -> RequestLog | None:
    path = os.environ.get("LAB_REQUEST_LOG")
    if not path:
        return None
    request_log = RequestLog(path)
    events.request.add_listener(request_log.on_request)
    # `quit` fires after the runner stopped its users (`quitting` fires before).
    events.quit.add_listener(request_log.close)
    return request_log
