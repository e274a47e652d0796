"""Load a run dir into pandas frames, tolerant of missing, empty or truncated files.

Nothing here raises because an evidence file is missing: what could not be read is
recorded in `Evidence.notes` and the corresponding attribute is None. Only meta.json
must be there, in a format this code reads (reports/formats.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from numpy.typing import ArrayLike

from .formats import read_meta

__all__ = [
    "HISTORY_PERCENTILES",
    "OUTPUT_DIRS",
    "OUTPUT_FILES",
    "PERCENTILE_COLUMNS",
    "Evidence",
    "bucket_snapshots",
    "counter_increase",
    "counter_total",
    "evidence_files",
    "exact_quantiles",
    "gauge",
    "load_evidence",
    "machine_cpus",
    "parse_time",
]

# Files and folders the reports write into a run dir: not evidence.
OUTPUT_FILES = frozenset({"summary.json", "diagnosis.json", "report.md", "report.html"})
OUTPUT_DIRS = frozenset({"plots"})

# Locust 2.x percentile columns (locust.stats.get_readable_percentiles(PERCENTILES_TO_REPORT)).
PERCENTILE_COLUMNS = [
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]
HISTORY_PERCENTILES = PERCENTILE_COLUMNS
_HISTORY_NUMERIC = [
    "Timestamp",
    "User Count",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_COLUMNS,
    "Total Request Count",
    "Total Failure Count",
]
_METRICS_COLUMNS = ["ts", "t", "name", "labels", "value"]
# Slack after the load end when restricting samples to the load window (sampling jitter).
_WINDOW_SLACK_S = 1.0


def parse_time(value: Any) -> float | None:
    """Unix seconds from an ISO-8601 string or a number; None when absent or invalid."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass
class Evidence:
    """Everything a run dir holds, as frames. Missing parts are None."""

    run_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    stats: pd.DataFrame | None = None  # locust_stats.csv, all rows
    aggregated: dict[str, float] | None = None  # its "Aggregated" row, numeric cells
    history: pd.DataFrame | None = None  # Aggregated rows of the history, numeric, with "t"
    history_full: bool = False  # Locust ran with --csv-full-history (per-endpoint rows)
    failures: pd.DataFrame | None = None  # locust_failures.csv
    requests: pd.DataFrame | None = None  # requests.csv: one row per request (start, name, ms...)
    metrics: pd.DataFrame | None = None  # metrics.csv: ts, t, name, labels, value
    profile: dict[str, Any] | None = None  # profile/profile.json
    load_start_ts: float | None = None
    load_end_ts: float | None = None
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.load_start_ts is None or self.load_end_ts is None:
            return None
        d = self.load_end_ts - self.load_start_ts
        return d if d > 0 else None

    def in_window(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of a frame with a `t` column inside the load window (t >= 0, t <= end)."""
        mask = frame["t"] >= 0
        duration = self.duration_s
        if duration is not None:
            mask &= frame["t"] <= duration + _WINDOW_SLACK_S
        return frame.loc[mask]


def evidence_files(run_dir: Path) -> list[str]:
    """Relative paths of the files in the run dir, without what the reports wrote."""
    if not run_dir.is_dir():
        return []
    out: list[str] = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or rel.parts[0] in OUTPUT_DIRS:
            continue
        if len(rel.parts) == 1 and rel.name in OUTPUT_FILES:
            continue
        out.append(rel.as_posix())
    return out


def _read_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read: {exc}")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object")
        return None
    return data


def _read_csv(path: Path, notes: list[str], *, required: bool = True) -> pd.DataFrame | None:
    label = path.name
    if not path.is_file():
        if required:
            notes.append(f"{label} is missing")
        return None
    try:
        frame = pd.read_csv(path, on_bad_lines="skip", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        notes.append(f"{label} is empty")
        return None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        notes.append(f"{label} could not be parsed: {exc}")
        return None
    if frame.empty and required:
        notes.append(f"{label} has a header but no rows")
    return frame


def _numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.replace({"N/A": None, "": None}), errors="coerce").astype(float)


def _load_stats(ev: Evidence) -> None:
    frame = _read_csv(ev.run_dir / "locust_stats.csv", ev.notes)
    if frame is None or frame.empty:
        return
    ev.stats = frame
    if "Name" not in frame.columns:
        ev.notes.append("locust_stats.csv has no Name column")
        return
    rows = frame.loc[frame["Name"] == "Aggregated"]
    if rows.empty:
        ev.notes.append("locust_stats.csv has no Aggregated row")
        return
    row = rows.iloc[-1]
    agg: dict[str, float] = {}
    for col in frame.columns:
        if col in ("Type", "Name"):
            continue
        value = pd.to_numeric(pd.Series([row[col]]), errors="coerce").iloc[0]
        if pd.notna(value):
            agg[col] = float(value)
    ev.aggregated = agg


def _load_history(ev: Evidence) -> None:
    frame = _read_csv(ev.run_dir / "locust_stats_history.csv", ev.notes)
    if frame is None or frame.empty:
        return
    if "Name" not in frame.columns or "Timestamp" not in frame.columns:
        ev.notes.append("locust_stats_history.csv lacks the Name or Timestamp column")
        return
    ev.history_full = bool((frame["Name"] != "Aggregated").any())
    hist = frame.loc[frame["Name"] == "Aggregated"].copy()
    for col in _HISTORY_NUMERIC:
        hist[col] = _numeric(hist[col]) if col in hist.columns else math.nan
    hist = hist.dropna(subset=["Timestamp"])
    hist = hist.drop_duplicates(subset="Timestamp", keep="last").sort_values("Timestamp")
    if hist.empty:
        ev.notes.append("locust_stats_history.csv has no Aggregated rows")
        return
    ev.history = hist.reset_index(drop=True)


def _load_metrics(ev: Evidence) -> None:
    frame = _read_csv(ev.run_dir / "metrics.csv", ev.notes)
    if frame is None or frame.empty:
        return
    missing = [c for c in ("ts", "name", "value") if c not in frame.columns]
    if missing:
        ev.notes.append(f"metrics.csv lacks the columns {', '.join(missing)}")
        return
    out = pd.DataFrame(
        {
            "ts": _numeric(frame["ts"]),
            "t": _numeric(frame["t"]) if "t" in frame.columns else math.nan,
            "name": frame["name"].astype(str),
            "labels": frame["labels"].astype(str) if "labels" in frame.columns else "",
            "value": pd.to_numeric(frame["value"], errors="coerce").astype(float),
        }
    )
    out = out.dropna(subset=["ts", "value"])
    ev.metrics = out.reset_index(drop=True)


def _resolve_window(ev: Evidence) -> None:
    meta = ev.meta
    start = parse_time(meta.get("load_started_at"))
    metrics = ev.metrics
    if start is None and metrics is not None:
        offsets = (metrics["ts"] - metrics["t"]).dropna()
        if not offsets.empty:
            start = float(offsets.median())
    hist_first = hist_last = None
    if ev.history is not None:
        hist_first = float(ev.history["Timestamp"].iloc[0])
        hist_last = float(ev.history["Timestamp"].iloc[-1])
    if start is None and hist_first is not None:
        start = hist_first
        ev.notes.append("load start taken from the first Locust history row")
    end = parse_time(meta.get("load_ended_at"))
    if end is None:
        end = parse_time(meta.get("ended_at"))
        # ended_at closes the whole run (profilers, teardown): Locust's last row is closer.
        if end is not None and hist_last is not None:
            end = min(end, hist_last + 1.0)
    if end is None and hist_last is not None:
        end = hist_last
    ev.load_start_ts = start
    ev.load_end_ts = end
    if start is None or end is None or end <= start:
        ev.notes.append("the load window (start/end) could not be determined")
    if metrics is not None and start is not None:
        missing_t = metrics["t"].isna()
        if missing_t.any():
            metrics.loc[missing_t, "t"] = metrics.loc[missing_t, "ts"] - start
    if ev.history is not None:
        base = start if start is not None else float(ev.history["Timestamp"].iloc[0])
        ev.history["t"] = ev.history["Timestamp"] - base


def _request_parts(ev: Evidence) -> pd.DataFrame | None:
    """requests.part<N>.csv of each Locust worker, before the lab merged them into
    requests.csv (a distributed run in progress, or one stopped before the merge)."""
    parts = sorted(ev.run_dir.glob("requests.part*.csv"))
    frames = [f for f in (_read_csv(p, ev.notes, required=False) for p in parts) if f is not None]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return None
    ev.notes.append(f"requests.csv not merged yet: read {len(frames)} requests.part<N>.csv files")
    return pd.concat(frames, ignore_index=True)


def _load_requests(ev: Evidence) -> None:
    """requests.csv, if Locust wrote one (runs before it have none: not a problem)."""
    path = ev.run_dir / "requests.csv"
    frame = _read_csv(path, ev.notes, required=False) if path.is_file() else _request_parts(ev)
    if frame is None or frame.empty:
        return
    if not {"start", "name", "ms"} <= set(frame.columns):
        ev.notes.append("requests.csv lacks the start, name or ms column")
        return
    # `intended` (open-model runs, reports/latency.py): blank in a closed run's rows.
    for col in ("start", "ms", "bytes", "ok", "intended"):
        if col in frame.columns:
            frame[col] = _numeric(frame[col])
    # A run killed mid-write leaves a torn last line.
    frame = frame.dropna(subset=["start", "ms"])
    if not frame.empty:
        ev.requests = frame.sort_values("start", kind="stable").reset_index(drop=True)


def machine_cpus(meta: Mapping[str, Any]) -> int | None:
    """meta.json `machine.cpus`: the cores of the box the run was on, if known."""
    machine = meta.get("machine")
    cpus = machine.get("cpus") if isinstance(machine, Mapping) else None
    return cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0 else None


def load_evidence(run_dir: Path) -> Evidence:
    """Read a run dir. Never raises for missing or malformed evidence files.

    Raises UnusableRunDir when meta.json is missing, unreadable or in a format
    this code does not know: then nothing says what the other files mean.
    """
    run_dir = Path(run_dir)
    ev = Evidence(run_dir=run_dir, meta=read_meta(run_dir))
    status = ev.meta.get("status")
    if status not in (None, "completed"):
        ev.notes.append(f"run status is {status!r}: the run did not complete normally")
    if ev.meta.get("error"):
        ev.notes.append(f"run error: {ev.meta['error']}")
    _load_stats(ev)
    _load_history(ev)
    ev.failures = _read_csv(run_dir / "locust_failures.csv", ev.notes, required=False)
    _load_requests(ev)
    _load_metrics(ev)
    profile_path = run_dir / "profile" / "profile.json"
    ev.profile = _read_json(profile_path, ev.notes)
    if ev.profile is None and ev.meta.get("profile") not in (None, "none"):
        ev.notes.append(f"profile {ev.meta.get('profile')!r} requested but profile.json is missing")
    _resolve_window(ev)
    ev.files = evidence_files(run_dir)
    return ev


def exact_quantiles(values: ArrayLike, shares: Sequence[float]) -> list[float]:
    """The response time under which each share of the requests falls, from every request.

    Locust's definition (the smallest value at or above which that share falls:
    numpy's `inverted_cdf`), without its rounding; one definition for the
    summary's percentiles and the comparison's CDF, so the two always agree.
    """
    found = np.quantile(np.asarray(values, dtype=float), list(shares), method="inverted_cdf")
    return [float(v) for v in found]


# --- metrics.csv helpers -------------------------------------------------------------------


def _select(ev: Evidence, name: str, exclude_route: str | None) -> pd.DataFrame | None:
    metrics = ev.metrics
    if metrics is None:
        return None
    rows = metrics.loc[metrics["name"] == name]
    if exclude_route is not None and not rows.empty:
        pattern = rf"(?:^|\|)route={re.escape(exclude_route)}(?:\||$)"
        rows = rows.loc[~rows["labels"].str.contains(pattern, regex=True)]
    rows = rows.dropna(subset=["t"])
    return None if rows.empty else rows


def counter_increase(
    ev: Evidence, name: str, exclude_route: str | None = None, label_filter: str | None = None
) -> float | None:
    """How much a counter grew in the load window, summed over its label sets.

    A series born during the load (a first 5xx, a first upstream call) started
    from 0, not from its first sample; summing per sample time would miss
    everything it counted before that sample.
    """
    rows = _select(ev, name, exclude_route)
    if rows is None:
        return None
    rows = ev.in_window(rows)
    if label_filter is not None:
        rows = rows.loc[rows["labels"].str.contains(label_filter, regex=False)]
    if rows.empty:
        return None
    # The window's first sample of any metric: a series absent then was born later.
    all_rows = ev.metrics
    assert all_rows is not None
    first_ts = ev.in_window(all_rows)["ts"].min()
    total = 0.0
    for _, series in rows.sort_values("ts").groupby("labels"):
        start = float(series["value"].iloc[0]) if series["ts"].iloc[0] == first_ts else 0.0
        total += float(series["value"].iloc[-1]) - start
    return total


def gauge(ev: Evidence, name: str) -> pd.DataFrame | None:
    """`ts, t, value` of a metric, summed over its label sets per sample, in the load window."""
    return counter_total(ev, name)


def counter_total(
    ev: Evidence,
    name: str,
    exclude_route: str | None = None,
    *,
    window: bool = True,
    label_filter: str | None = None,
) -> pd.DataFrame | None:
    """`ts, t, value`: the metric summed over label sets per sample time, sorted by ts;
    only the label sets that contain `label_filter` (e.g. "count=payments"), when given.
    `window=False` keeps the samples after the load too (a gauge after its drain)."""
    rows = _select(ev, name, exclude_route)
    if rows is None:
        return None
    if label_filter is not None:
        rows = rows.loc[rows["labels"].str.contains(label_filter, regex=False)]
    if window:
        rows = ev.in_window(rows)
    if rows.empty:
        return None
    out = rows.groupby("ts", as_index=False).agg(t=("t", "first"), value=("value", "sum"))
    return out.sort_values("ts").reset_index(drop=True)


def bucket_snapshots(
    ev: Evidence, name: str, exclude_route: str | None = None
) -> pd.DataFrame | None:
    """Cumulative bucket counts per sample in the load window.

    Index: sample ts; columns: the `le` bounds (floats, sorted, +Inf last), summed over
    every other label; plus nothing else. The `t` of each sample is in `.attrs["t"]`.
    """
    rows = _select(ev, name, exclude_route)
    if rows is None:
        return None
    rows = ev.in_window(rows)
    le = rows["labels"].str.extract(r"(?:^|\|)le=([^|]*)", expand=False)
    le_num = pd.to_numeric(le, errors="coerce")
    rows = rows.assign(le=le_num).dropna(subset=["le"])
    if rows.empty:
        return None
    table = rows.pivot_table(index="ts", columns="le", values="value", aggfunc="sum")
    table = table.sort_index().sort_index(axis=1).dropna()
    if table.empty:
        return None
    times = rows.groupby("ts")["t"].first().reindex(table.index)
    table.attrs["t"] = [float(v) for v in times.to_numpy()]
    return table
