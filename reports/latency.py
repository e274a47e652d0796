"""The load model of a run and the latency it measures (docs/run-dir.md).

Closed model (Locust's users wait for each response before sending the next):
a request's latency is Locust's `ms`, from the actual send. When the app
stalls, the users stop sending, so the requests that would have waited are
never made and the tail is under-reported (coordinated omission).

Open model (meta.json `load.rate`: requests sent on a schedule whatever the
responses): each row of requests.csv carries `intended`, when the schedule
meant to send it, and its latency is measured from then, as HdrHistogram's
corrected recording and wrk2 do: `(start - intended) * 1000 + ms`. A request
the generator sent late (every user busy with a stalled response) counts the
wait too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from faults.symptom import finite

from .evidence import Evidence, exact_quantiles

__all__ = [
    "LoadModel",
    "late_sends",
    "load_model",
    "offered_rps",
    "per_second_percentiles",
    "request_latencies",
]

LoadModel = Literal["closed", "open"]


def offered_rps(meta: Mapping[str, Any]) -> float | None:
    """meta.json `load.rate`: the requests per second an open-model run offered; None
    for a closed run (no rate, as before the key existed) or a rate that is no
    positive number."""
    load = meta.get("load")
    rate = load.get("rate") if isinstance(load, Mapping) else None
    found = finite(rate)
    return found if found is not None and found > 0 else None


def load_model(meta: Mapping[str, Any]) -> LoadModel:
    return "open" if offered_rps(meta) is not None else "closed"


def _intended(frame: pd.DataFrame) -> pd.Series:
    if "intended" not in frame.columns:  # a file of before the column: a closed run
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return frame["intended"]


def request_latencies(ev: Evidence, *, corrected: bool = True) -> pd.DataFrame | None:
    """Each request of requests.csv as `name`, `at` (epoch s the latency runs from)
    and `ms` (the latency); None without requests.csv.

    `corrected` (the summary's p50/p95/p99): in an open run, from the intended
    send time, and None when no row has one (then nothing says when the schedule
    meant to send them). A row of an open run without `intended` was sent when
    meant (its latency is `ms`). A send before its intended time (the two columns'
    0.1 ms rounding) waited nothing: the wait is never negative, so a request's
    corrected latency is never below its response time. Closed runs, and
    `corrected=False`: Locust's `ms`, from the actual send.
    """
    frame = ev.requests
    if frame is None:
        return None
    start = frame["start"]
    if corrected and load_model(ev.meta) == "open":
        intended = _intended(frame)
        if intended.isna().all():
            return None
        at = intended.fillna(start)
        ms = frame["ms"] + 1000.0 * (start - at).clip(lower=0.0)
    else:
        at, ms = start, frame["ms"]
    return pd.DataFrame({"name": frame["name"], "at": at, "ms": ms})


def late_sends(ev: Evidence) -> tuple[int, int, float] | None:
    """Of an open run's requests with an intended time: how many were sent more
    than one schedule interval (1 / offered rate) late, out of how many, and the
    longest wait in s. Past one interval the next request was already due: the
    generator was sending below the offered rate at that moment. None for a
    closed run or without intended times."""
    rate = offered_rps(ev.meta)
    frame = ev.requests
    if rate is None or frame is None:
        return None
    intended = _intended(frame)
    known = intended.notna()
    if not known.any():
        return None
    wait = (frame["start"] - intended)[known]
    # At the columns' resolution (0.1 ms): a send exactly one interval late is not
    # "more than one interval" late whichever way the epoch's float rounding falls.
    late = wait.round(4) > round(1.0 / rate, 4)
    return int(late.sum()), int(known.sum()), float(max(wait.max(), 0.0))


_LEVELS = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def per_second_percentiles(ev: Evidence, *, corrected: bool) -> pd.DataFrame | None:
    """p50/p95/p99 (ms), corrected or from the actual send, of the requests of each
    second: columns t (s since the load started, the second's start), p50, p95,
    p99. None without the latencies. Either kind bins a request by the time its
    corrected latency runs from (an open run's intended send time, a closed run's
    start), so that the two lines of an open run hold the same requests."""
    found = request_latencies(ev, corrected=corrected)
    if found is None:
        return None
    bins = found if corrected else request_latencies(ev, corrected=True)
    at = (bins if bins is not None else found)["at"]
    origin = ev.load_start_ts if ev.load_start_ts is not None else float(at.min())
    second = np.floor(at.to_numpy(dtype=float) - origin)
    ms = found["ms"].to_numpy(dtype=float)
    levels = list(_LEVELS.values())
    rows = [
        {"t": float(t), **dict(zip(_LEVELS, exact_quantiles(ms[second == t], levels), strict=True))}
        for t in np.unique(second)
    ]
    return pd.DataFrame(rows) if rows else None
