"""The on-disk formats reports/ reads and writes: a run dir's, and summary.json's.

Each file says its format in an integer `format` key (a file without one is
format 1, what was written before the key existed), in the style of asv's
`results.py` and its `api_version`: the reader compares it with the format it
knows before trusting the content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import UnusableRunDir

__all__ = ["RUN_DIR_FORMAT", "AuditFile", "SummaryFile", "file_format", "read_meta"]

# The run dir layout of docs/run-dir.md, as meta.json's `format` says it (the
# lab's `lab.run_record.FORMAT`; reports/ must not import the lab to read it).
RUN_DIR_FORMAT = 1


def file_format(data: Mapping[str, Any]) -> int | None:
    """The `format` of a file's content: 1 without the key, None when it is no whole number."""
    found = data.get("format", 1)
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def _read_in_format(path: Path, expected: int) -> dict[str, Any] | None:
    """A JSON object file's content when it exists, parses and is in format `expected`."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or file_format(data) != expected:
        return None
    return data


def read_meta(run_dir: Path) -> dict[str, Any]:
    """meta.json of a run dir whose format this code reads; UnusableRunDir otherwise.

    Everything else in a run dir may be missing or torn (an interrupted run still
    gets a report), but without meta.json nothing says what the files mean.
    """
    path = Path(run_dir) / "meta.json"
    if not path.is_file():
        raise UnusableRunDir(
            f"{run_dir} has no meta.json, so it is no run dir of any format; "
            "pass a folder that `lab run` wrote under runs/"
        )
    try:
        meta = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UnusableRunDir(
            f"{path} could not be read ({exc}), so the run dir's format is unknown; "
            "run the scenario again (`lab run`) for a usable run dir"
        ) from None
    if not isinstance(meta, dict):
        raise UnusableRunDir(
            f"{path} is not a JSON object, so the run dir's format is unknown; "
            "run the scenario again (`lab run`) for a usable run dir"
        )
    found = file_format(meta)
    if found is None or found < 1:
        raise UnusableRunDir(
            f"{path} says format {meta.get('format')!r}, but run dir formats are whole "
            f"numbers from 1 (this lab reads up to {RUN_DIR_FORMAT}); fix that key or run the "
            "scenario again"
        )
    if found > RUN_DIR_FORMAT:
        raise UnusableRunDir(
            f"{run_dir} is a run dir of format {found}, newer than this lab reads (format "
            f"{RUN_DIR_FORMAT} and older); update the lab (git pull, then make) to report on it"
        )
    return meta


class SummaryFile:
    """summary.json of one run dir: the only code that writes or reads it.

    Format 1 (no `format` key) predates the metric registry; format 2 is the
    registry's fields, in its order, after `format`; format 3 changed the meaning
    of `server_p95_ms` (from Prometheus' interpolation inside the histogram bucket
    that holds the p95 to that bucket's upper end, a bound) and added
    `server_p95_low_ms` (its lower end) after it; format 4 added the load model
    (`load_model`, `offered_rps` after `rps`, `p99_uncorrected_ms` after `p99_ms`;
    and `app_cpu_share_of_free` after `app_cpu_cores`)
    and, for open-model runs, measures the client percentiles from each request's
    intended send time (reports/latency.py). A summary is derived from
    the evidence, so one in any other format is not migrated but computed again
    from the run dir: an older one may lack fields or mean them differently, and
    a newer one's meaning is unknown here (the newer lab recomputes ours in turn).
    """

    FORMAT = 4

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "summary.json"

    def write(self, summary: Mapping[str, Any]) -> Path:
        data = {"format": self.FORMAT, **summary}
        self.path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return self.path

    def read(self) -> dict[str, Any] | None:
        """The summary (without `format`) when the file exists, parses and is in FORMAT."""
        data = _read_in_format(self.path, self.FORMAT)
        if data is not None:
            del data["format"]
        return data

    def load(self, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The summary on disk if it can be trusted, else `build()`, written back if possible."""
        found = self.read()
        if found is not None:
            return found
        summary = build()
        with contextlib.suppress(OSError):  # a read-only run dir: the summary is still returned
            self.write(summary)
        return summary


class AuditFile:
    """audit.json of one run dir: the counts a scenario's `audit` took from the
    services' own records after the run (faults/_contract.py `Scenario.audit`).

    Format 1: {"format": 1, "scenario": slug, "counts": {name: number}}.
    """

    FORMAT = 1
    NAME = "audit.json"

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / self.NAME

    def write(self, scenario: str, counts: Mapping[str, int | float]) -> Path:
        data = {"format": self.FORMAT, "scenario": scenario, "counts": dict(counts)}
        self.path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return self.path

    def read(self) -> dict[str, float] | None:
        """The counts, when the file exists, parses, is in FORMAT and holds numbers."""
        data = _read_in_format(self.path, self.FORMAT)
        counts = None if data is None else data.get("counts")
        if not isinstance(counts, dict):
            return None
        return {
            str(k): float(v) for k, v in counts.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }  # fmt: skip


class ProxyLog:
    """proxy-access.log of a release scenario's run dir: nginx's record of each
    request (lab/proxy.py writes the configuration that makes it).

    One line per request, space-separated: when it ended (epoch seconds, ms), the
    status, the upstream that answered ("127.0.0.1:PORT", "-" when nginx answered
    itself), its time in seconds, the method and the path. Lines that do not parse
    (a torn last line) are skipped.
    """

    NAME = "proxy-access.log"
    # nginx's log_format for it: the fields above, in that order.
    NGINX_FORMAT = "$msec $status $upstream_addr $request_time $request_method $uri"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> list[ProxyLine]:
        try:
            return self.parse(self.path.read_text())
        except FileNotFoundError:
            return []

    def read_new(self, offset: int) -> tuple[list[ProxyLine], int]:
        """The whole lines written from byte `offset` on, and the offset after them: a
        reader that follows the log as nginx writes it reads each line once."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], offset
        whole = data[: data.rfind(b"\n") + 1]  # a line nginx is still writing waits
        return self.parse(whole.decode(errors="replace")), offset + len(whole)

    @staticmethod
    def parse(text: str) -> list[ProxyLine]:
        lines = []
        for raw in text.splitlines():
            parts = raw.split(" ")
            if len(parts) != 6:
                continue
            with contextlib.suppress(ValueError):
                lines.append(ProxyLine(float(parts[0]), int(parts[1]), parts[2].rstrip(","),
                                       float(parts[3]), parts[4], parts[5]))  # fmt: skip
        return lines


@dataclass(frozen=True)
class ProxyLine:
    ts: float  # when the request ended (time.time())
    status: int
    upstream: str
    seconds: float
    method: str
    path: str
