"""Every second: the app's /metrics and the CPU/RSS of the app and of Locust.

Written to `metrics.csv` in the long format of docs/run-dir.md, flushed each
second so an interrupted run keeps what it measured. The latest values are
kept for the live progress line.

Each sample is taken near its tick, within a quarter of a period, at random. An
open-model load is periodic too (a request every 1/rate s), and a sampler on a
fixed period locks onto one phase of it: the same slot of the schedule then
arrives during every scrape and pays for the app's rendering of /metrics on its
event loop (~2 ms here) and the sampler's parsing on the shared cores. Measured
on upstream-flaky's refused payments at 25/s (2026-12-02): the 4% due within
10 ms after a scrape took 8.0 ms on average, the rest 4.2, and in that run they
were the p99. At a random phase the requests a scrape delays are whichever fall
due just after it, about 1% of them, not the same slot of the schedule in every
second: at 50/s the same payments' p99 was 5.1-7.8 ms in six runs. A quarter of
a period moves the phase across any schedule of 4 requests/s or more; the
intervals stay between 0.5 and 1.5 periods, and the reports divide by each
one's length.
"""

from __future__ import annotations

import csv
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from lab.processes import tree_of

__all__ = ["Sampler"]

_HEADER = ["ts", "t", "name", "labels", "value"]


def _labels(labels: dict[str, str]) -> str:
    return "|".join(f"{k}={labels[k]}" for k in sorted(labels))


def _high_water_mark(pid: int) -> float:
    """The kernel's peak RSS of one process (VmHWM), in bytes; 0 when unreadable.

    A 1 s sample can miss a spike that lasts half a second (a buffered upload,
    a big response); the high-water mark cannot.
    """
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def _tree_usage(pid: int | None) -> tuple[float, float, int, float] | None:
    """(rss bytes, cpu seconds, processes, largest peak rss of one process) of a tree."""
    if pid is None:
        return None
    rss = cpu = hwm = 0.0
    procs = tree_of(pid)
    for proc in procs:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
        except psutil.Error:
            continue
        hwm = max(hwm, _high_water_mark(proc.pid))
    return (rss, cpu, len(procs), hwm) if procs else None


class Sampler(threading.Thread):
    def __init__(
        self,
        metrics_url: str,
        out: Path,
        app_pid: Callable[[], int | None],
        interval: float = 1.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name="lab-sampler", daemon=True)
        self.metrics_url = metrics_url
        self.out = out
        self.app_pid = app_pid
        self.locust_pid: int | None = None
        self.interval = interval
        self.headers = headers or {}  # e.g. the proxy's "not traffic" mark (lab/proxy.py)
        self.t0 = time.time()  # start the sampler when the load starts: t counts from here
        self.latest: dict[str, float] = {}
        self.errors = 0
        self._stop_event = threading.Event()
        self._phase = random.Random()  # seeded from the OS: no two runs share a phase

    def run(self) -> None:
        with self.out.open("a", newline="") as handle, httpx.Client(timeout=2.0) as client:
            writer = csv.writer(handle)
            if handle.tell() == 0:
                writer.writerow(_HEADER)
            tick = time.monotonic()
            while not self._stop_event.is_set():
                self._sample(client, writer)
                handle.flush()
                # One sample per period on average, near its tick at a random phase
                # (see the module's docstring).
                tick += self.interval
                due = tick + self._phase.uniform(-0.25, 0.25) * self.interval
                self._stop_event.wait(max(due - time.monotonic(), 0))
            self._sample(client, writer)  # one last sample at the end of the load

    def _sample(self, client: httpx.Client, writer: Any) -> None:
        ts = time.time()
        t = round(ts - self.t0, 3)
        rows: list[tuple[str, str, float]] = []
        try:
            text = client.get(self.metrics_url, headers=self.headers).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue
                    rows.append((sample.name, _labels(sample.labels), float(sample.value)))
        except (httpx.HTTPError, ValueError):
            self.errors += 1  # the app is busy or gone: the process samples still count
        for prefix, pid in (("lab_app", self.app_pid()), ("lab_locust", self.locust_pid)):
            usage = _tree_usage(pid)
            if usage is None:
                continue
            rss, cpu, count, hwm = usage
            rows.append((f"{prefix}_rss_bytes", "", rss))
            rows.append((f"{prefix}_cpu_seconds_total", "", cpu))
            if prefix == "lab_app":
                rows.append(("lab_app_processes", "", float(count)))
                rows.append(("lab_app_rss_hwm_bytes", "", hwm))
        for name, labels, value in rows:
            writer.writerow([f"{ts:.3f}", t, name, labels, repr(value)])
        self.latest = {f"{n}{{{lab}}}" if lab else n: v for n, lab, v in rows}
        self.latest["ts"] = ts

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=10)
