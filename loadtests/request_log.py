"""Every request Locust makes, one CSV row each: `requests.csv` in the run dir.

Locust keeps percentiles in rounded buckets (to 1 ms below 100 ms, 10 ms below
1 s): a 1 ms first page and a 1.4 ms one read the same, and a ratio with such a
page below it moves by half on rounding alone. The exact times let the reports
compute a route's percentiles without that error, and give a later diagnosis
the raw series (when each request started, how long it took, what it got).

Columns: start (epoch s), name ("GET /route", Locust's request name), ms
(response time from the actual send), bytes, ok (1, or 0 for a failure),
intended (epoch s, like start: when the open model's schedule meant to send
the request, loadtests/open_model.py; a task's later requests, sent when the
task chose, have their start there; empty in a closed-model run). The latency
without coordinated omission is `(start - intended) * 1000 + ms`. Files written
before the `intended` column have the first five only.

Enabled by LAB_REQUEST_LOG=<path>; the file is written through a buffer and
closed when Locust quits, so a run stopped with SIGINT keeps every row. It may
hold a few more rows than Locust's CSVs: requests that ended after Locust's last
snapshot. Distributed (`locust --processes N`), the master writes nothing and
the worker with index N writes `requests.part<N>.csv` beside that path (they
are forked from one process: one file would interleave their buffers);
`merge_parts(run_dir)` makes requests.csv of them once Locust has exited.

This module imports Locust only in install(), so that merge_parts can be
called from a process that must not be monkey-patched by gevent.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "INTENDED", "RequestLog", "install", "merge_parts", "part_path"]

COLUMNS = ("start", "name", "ms", "bytes", "ok", "intended")
# The request event's `context` key of the intended send time (open_model.py):
# the slot's epoch second for a task's first request, None for its later ones.
INTENDED = "lab_intended"
log = logging.getLogger("lab.load")


def part_path(path: Path, worker_index: int) -> Path:
    """Where the worker with this index writes its rows of `path` (requests.csv)."""
    return path.with_name(f"{path.stem}.part{worker_index}{path.suffix}")


class RequestLog:
    def __init__(self, path: Path) -> None:
        # Closed by close() when Locust quits, not by a with-block.
        self._file = path.open("w", newline="", buffering=1 << 16)
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
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if self._failed:
            return
        start = f"{start_time if start_time is not None else time.time():.4f}"
        try:
            self._writer.writerow(
                (
                    start,
                    f"{request_type} {name}",
                    f"{response_time:.3f}",
                    response_length,
                    0 if exception is not None else 1,
                    _intended(context, start),
                )
            )
        except (OSError, ValueError) as exc:  # a full disk must not stop the load
            log.warning("request log stopped: %s", exc)
            self._failed = True

    def close(self, **_: Any) -> None:
        if not self._file.closed:
            self._file.close()


def _intended(context: dict[str, Any] | None, start: str) -> str:
    if context is None or INTENDED not in context:
        return ""  # a closed-model run
    slot = context[INTENDED]
    return start if slot is None else f"{slot:.4f}"


def install() -> None:
    """Open the log at Locust's `init`, once the runner says which process this is."""
    raw = os.environ.get("LAB_REQUEST_LOG")
    if not raw:
        return
    path = Path(raw)

    from locust import events

    @events.init.add_listener
    def _open(environment: Any, runner: Any = None, **_: Any) -> None:
        where = process_log_path(path, runner)
        if where is None:
            return  # the master: it sends no request, its workers do
        request_log = RequestLog(where)
        events.request.add_listener(request_log.on_request)
        # `quit` fires after the runner stopped its users (`quitting` fires before).
        events.quit.add_listener(request_log.close)


def merge_parts(
    run_dir: Path, name: str = "requests.csv", columns: Sequence[str] | None = COLUMNS
) -> int:
    """The workers' <name>.part<N>.csv as one <name> sorted by start; rows written.

    Every per-process log of a distributed run is merged this way (requests.csv,
    and a workload's own such as checkouts.csv): rows whose first column is the
    start time, the same header in every part. The parts are deleted once the
    file is in place (written to a temporary file first, then renamed: an
    interrupted merge leaves the parts). A part cut short (its worker killed)
    loses only its unfinished last line; a part that is empty (its worker killed
    before it flushed its header, in a run stopped as it started) holds nothing.
    `columns` is the header every part must have (None: the first part's), and
    the header written when no part holds one. Without any part, <name> is left as
    it is and 0 returned.
    """
    target = run_dir / name
    parts = sorted(run_dir.glob(f"{target.stem}.part*{target.suffix}"))
    if not parts:
        return 0
    expected = list(columns) if columns is not None else None
    rows: list[list[str]] = []
    for part in parts:
        text = part.read_text()
        if not text.endswith("\n"):  # its worker killed mid-line: that line goes, whole
            text = text[: text.rfind("\n") + 1]
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            continue
        if expected is None:
            expected = header
        if header != expected:
            raise ValueError(f"{part.name} has columns {header}, not {expected}")
        rows.extend(reader)
    if expected is None:  # every part empty, and no header known: nothing to keep
        for part in parts:
            part.unlink()
        return 0
    rows.sort(key=lambda row: float(row[0]))
    scratch = target.with_name(f".{target.name}.merging")
    with scratch.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(expected)
        writer.writerows(rows)
    scratch.replace(target)
    for part in parts:
        part.unlink()
    return len(rows)


def process_log_path(path: Path, runner: Any) -> Path | None:
    """Where this Locust process writes a per-run log meant to be at `path`: the path
    itself in a single process, its part (merged by merge_parts) in a worker, None in
    the master, which sends nothing."""
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        return None
    if isinstance(runner, WorkerRunner):
        return part_path(path, runner.worker_index)
    return path
