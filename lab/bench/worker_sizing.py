"""worker-sizing's curve: throughput and p99 against the worker count, per type, per mix.

Each point is one bounded run of the worker-sizing scenario with its worker count
set (`--workers`): the faulty variant's gunicorn gthread workers (2 threads each)
and the fixed variant's uvicorn workers, 1 to 2x the cores, on the CPU-heavy mix
(the single-worker scenario's) and on the I/O-heavy one (recommendations that
wait ~100 ms on the model server, and /healthz). The points run one after the
other on the same machine, so the curve compares setups measured side by side.

- The CPU mix's load is closed and saturating (32 users, no think time): a
  point's throughput is what that setup can compute, its p99 what its queue
  costs.
- The I/O mix's load is open: 300 requests/s on a schedule, the scenario's own
  rate, whatever the app answers. A closed load would measure CPU instead: with
  no think time the health checks alone saturate the box, and more processes
  win more of it from Locust on 2 cores. At a fixed offered rate the question
  is the one production asks: does this setup keep up, and at what p99 (from
  each request's intended send time)?
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.bench import curves
from lab.measurements import (
    DEFAULT_FILE,
    CurveMeasurement,
    MeasurementFile,
    machine_now,
)
from lab.runner import RunOptions
from lab.runner import run as run_variant

__all__ = ["MIXES", "PLOT", "SLUG", "STEP_S", "markdown", "plot", "run", "worker_counts"]

SLUG = "worker-sizing"
STEP_S = 12.0
# mix -> (workload, users, rate): 32 users keep the CPU mix's workers saturated (as
# in single-worker); the I/O mix is offered the scenario's rate (its users: the
# runner's default for that rate, the cap on requests in flight).
MIXES: dict[str, tuple[str, int | None, float]] = {
    "cpu": ("cpu_mix", 32, 0.0),
    "io": ("blocking", None, 300.0),
}
# worker class -> the scenario's variant that runs it
CLASSES: dict[str, bool] = {"uvicorn": True, "gthread": False}
PLOT = f"{SLUG}.png"  # docs/<slug>.png: the scenario page links it by that name
_KEPT = ("rps", "p50_ms", "p99_ms", "app_cpu_cores", "rss_end_mb", "error_rate")


def worker_counts(cores: int | None = None) -> list[int]:
    """1 to twice the cores: past the cores, the curve shows what extra workers cost."""
    return list(range(1, 2 * (cores or os.cpu_count() or 1) + 1))


def run(
    where: Path,
    out: Path,
    progress: Callable[[str], None] = lambda _description: None,
    committed: Path | None = DEFAULT_FILE,
    counts: list[int] | None = None,
    step_s: float = STEP_S,
) -> dict[str, Any]:
    """Every point in turn; as bench.json's part (and into `committed`)."""
    points: list[dict[str, Any]] = []
    quiet = Console(file=io.StringIO())
    counts = counts or worker_counts()
    total, done = len(MIXES) * len(CLASSES) * len(counts), 0
    for mix, (workload, users, rate) in MIXES.items():
        for worker_class, fixed in CLASSES.items():
            for workers in counts:
                done += 1
                progress(f"{mix} mix, {workers} {worker_class} worker(s) ({done}/{total})")
                options = RunOptions(
                    SLUG, fixed=fixed, workers=workers, workload=workload, users=users,
                    rate=rate, duration_s=step_s, out=out,
                )  # fmt: skip
                result = run_variant(options, quiet)
                if result.status == "interrupted":
                    raise KeyboardInterrupt
                summary = result.summary
                points.append({
                    "mix": mix, "workload": workload, "users": _users(result.run_dir, users),
                    "rate": rate or None,
                    "worker_class": worker_class, "workers": workers,
                    **{key: summary.get(key) for key in _KEPT},
                    "status": result.status, "run": str(result.run_dir),
                })  # fmt: skip
    measured = CurveMeasurement(
        slug=SLUG, step_s=step_s, points=tuple(points),
        provenance=machine_now("bench (worker curve)", str(where)),
    )  # fmt: skip
    if committed is not None:
        MeasurementFile.store(committed, measured)
        plot(measured, committed.parent / PLOT)  # the one the page shows
    chart = plot(measured, out / PLOT)
    return {**measured.as_dict(), "plot": str(chart)}


def _users(run_dir: Path, asked: int | None) -> int | None:
    """The users the run had (an open run's: the runner's default for its rate)."""
    try:
        return int(json.loads((run_dir / "meta.json").read_text())["load"]["users"])
    except (OSError, ValueError, KeyError, TypeError):
        return asked


def plot(curve: CurveMeasurement, path: Path) -> Path:
    """Throughput and p99 against workers: a row per mix, a line per worker class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mixes, cores = list(MIXES), curve.provenance.cpus or os.cpu_count() or 1
    fig, axes = plt.subplots(len(mixes), 2, figsize=(10, 3.6 * len(mixes)), squeeze=False)
    for row, mix in enumerate(mixes):
        for col, (metric, label) in enumerate((("rps", "throughput (req/s)"),
                                               ("p99_ms", "p99 (ms)"))):  # fmt: skip
            ax = axes[row][col]
            for worker_class in CLASSES:
                series = [p for p in curve.series(mix, worker_class) if p.get(metric) is not None]
                ax.plot([p["workers"] for p in series], [p[metric] for p in series],
                        marker="o", label=worker_class)  # fmt: skip
            rate = MIXES[mix][2]
            if metric == "rps" and rate:
                ax.axhline(rate, color="grey", linestyle=":", label="offered")
            ax.axvline(cores, color="grey", linestyle="--", alpha=0.6, label="cores")
            ax.set_xticks(sorted({int(p["workers"]) for p in curve.points}))
            ax.set_title(f"{mix} mix: {label}")
            ax.set_xlabel("workers")
            ax.set_ylabel(label)
            if metric == "p99_ms":
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend()
    return curves.save(fig, path)


def markdown(part: dict[str, Any]) -> list[str]:
    """bench.md's tables of the part `run` returned (the page shows the same)."""
    return curves.part_markdown(SLUG, part)
