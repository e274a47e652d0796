"""A workload's own record, one CSV beside the run's `requests.csv`: what the client knows.

Some proofs need the client's view of what it did, not only each request's
time: which orders the shop accepted payment for (checkouts.csv), which
webhook events the sender saw acknowledged (webhooks.csv). A `SideLog` is that
file. It is opened at Locust's init, not at import: with `--processes` the
workers are forked after the import, and each writes a part of its own
(`<name>.part<N>.csv`), which the runner merges after the run like
requests.csv (lab/runner.py, `_merge_logs`). Without LAB_REQUEST_LOG (a
workload imported outside a run) it writes nothing.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from locust import events

from loadtests.request_log import process_log_path

__all__ = ["SideLog"]


class SideLog:
    def __init__(self, name: str, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._file: IO[str] | None = None
        self._writer: Any = None
        request_log = os.environ.get("LAB_REQUEST_LOG")
        self._path = Path(request_log).with_name(name) if request_log else None
        if self._path is not None:
            events.init.add_listener(self.open)

    def open(self, runner: Any = None, **_: Any) -> None:
        assert self._path is not None
        where = process_log_path(self._path, runner)
        if where is None:
            return  # the master sends nothing
        # Line-buffered, closed when Locust quits: a run stopped by SIGINT keeps its rows.
        self._file = where.open("w", newline="", buffering=1)
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)
        events.quit.add_listener(self.close)

    def write(self, *row: object) -> None:
        if self._writer is not None:
            try:
                self._writer.writerow(row)
            except (OSError, ValueError):  # a full disk or a closed file must not stop the load
                self._writer = None

    def close(self, **_: Any) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
