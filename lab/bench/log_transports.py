"""sse-logs' curve: what the app spends on the clients that follow its live log.

Each point is one bounded run of the sse-logs scenario with one transport's
users only (LAB_LOG_TRANSPORT=sse or ws, loadtests/workloads/log_tail.py): N
followers connected and reading, and the transport's WRITERS_PER_TRANSPORT
writers, whose requests make the lines (one every 2 s each) and time their
arrival. N is 0, 1,000 and 2,000, for the pushed (fixed) and the polled
(faulty) feed. The points run one after the other on this machine.

A point's numbers are the app process's, from the runner's own sampler (/proc,
outside the app): its RSS, and its CPU, both over the second half of the load,
when every follower is connected and the connection storm is over. What 1,000
clients cost is the difference to the transport's 0-follower point (its
writers and their lines only), per 1,000: `rss_per_1000_mb`,
`cpu_per_1000_cores`. The 2,000 point says whether the cost grows linearly.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.bench import curves
from lab.bench.catalogue import environ
from lab.measurements import DEFAULT_FILE, CurveMeasurement, MeasurementFile, machine_now
from lab.runner import RunOptions
from lab.runner import run as run_variant

__all__ = ["CLIENTS", "PLOT", "SLUG", "STEP_S", "VARIANTS", "markdown", "plot", "run", "steady"]

SLUG = "sse-logs"
STEP_S = 24.0
CLIENTS = (0, 1000, 2000)
TRANSPORTS = ("sse", "ws")
# the curve's class -> the scenario's variant (fixed?)
VARIANTS: dict[str, bool] = {"pushed": True, "polled": False}
PLOT = f"{SLUG}.png"
# The table's columns of each feed, and the plot's panels.
COLUMNS = (
    ("rss_mb", "RSS MB"), ("rss_per_1000_mb", "MB per 1,000"),
    ("cpu_per_1000_cores", "cores per 1,000"), ("line_p50_ms", "line p50 ms"),
)  # fmt: skip
PLOTTED = (("rss_mb", "app RSS (MB)"), ("cpu_cores", "app CPU (cores)"),
           ("line_p50_ms", "a line's arrival, p50 (ms)"))  # fmt: skip
WRITERS = 4  # loadtests/workloads/log_tail.py WRITERS_PER_TRANSPORT (not imported: gevent)


def run(
    where: Path,
    out: Path,
    progress: Callable[[str], None] = lambda _description: None,
    committed: Path | None = DEFAULT_FILE,
    clients: tuple[int, ...] = CLIENTS,
    step_s: float = STEP_S,
) -> dict[str, Any]:
    """Every point in turn; as bench.json's part (and into `committed`)."""
    points: list[dict[str, Any]] = []
    quiet = Console(file=io.StringIO())
    total, done = len(TRANSPORTS) * len(VARIANTS) * len(clients), 0
    for transport in TRANSPORTS:
        for variant, fixed in VARIANTS.items():
            for count in clients:
                done += 1
                progress(f"{transport}, {variant} feed, {count} followers ({done}/{total})")
                options = RunOptions(SLUG, fixed=fixed, users=count + WRITERS,
                                     duration_s=step_s, out=out)  # fmt: skip
                with environ("LAB_LOG_TRANSPORT", transport):
                    result = run_variant(options, quiet)
                if result.status == "interrupted":
                    raise KeyboardInterrupt
                route = result.summary.get("routes", {}).get(f"{transport.upper()} log line", {})
                points.append({
                    "mix": transport, "worker_class": variant, "clients": count,
                    "users": count + WRITERS, "workload": "log_tail",
                    **steady(result.run_dir),
                    "line_p50_ms": route.get("p50_ms"), "line_failures": route.get("failures"),
                    "error_rate": result.summary.get("error_rate"),
                    "status": result.status, "run": str(result.run_dir),
                })  # fmt: skip
    per_thousand(points)
    measured = CurveMeasurement(
        slug=SLUG, step_s=step_s, points=tuple(points),
        provenance=machine_now("bench (log transports)", str(where)),
        axis="clients", columns=COLUMNS,
    )  # fmt: skip
    if committed is not None:
        MeasurementFile.store(committed, measured)
        plot(measured, committed.parent / PLOT)
    chart = plot(measured, out / PLOT)
    return {**measured.as_dict(), "plot": str(chart)}


def steady(run_dir: Path) -> dict[str, float | None]:
    """The app's RSS (MB, mean) and CPU (cores) over the load's second half, from the
    runner's samples of the app process (lab_app_rss_bytes, lab_app_cpu_seconds_total)."""
    from reports.evidence import counter_total, load_evidence

    ev = load_evidence(run_dir)
    half = (ev.duration_s or 0.0) / 2
    out: dict[str, float | None] = {"rss_mb": None, "cpu_cores": None}
    rss = counter_total(ev, "lab_app_rss_bytes")
    if rss is not None and not (late := rss.loc[rss["t"] >= half]).empty:
        out["rss_mb"] = float(late["value"].mean()) / 2**20
    cpu = counter_total(ev, "lab_app_cpu_seconds_total")
    if cpu is not None and len(late := cpu.loc[cpu["t"] >= half]) >= 2:
        span = float(late["t"].iloc[-1] - late["t"].iloc[0])
        if span > 0:
            out["cpu_cores"] = float(late["value"].iloc[-1] - late["value"].iloc[0]) / span
    return out


def per_thousand(points: list[dict[str, Any]]) -> None:
    """Each point with followers gains what 1,000 of them cost over its series' 0 point."""
    for point in points:
        base = next((p for p in points if p["mix"] == point["mix"] and p["clients"] == 0
                     and p["worker_class"] == point["worker_class"]), None)  # fmt: skip
        count = int(point["clients"])
        for key, derived in (("rss_mb", "rss_per_1000_mb"), ("cpu_cores", "cpu_per_1000_cores")):
            now, then = point.get(key), base.get(key) if base else None
            if not isinstance(now, float) or not isinstance(then, float):
                point[derived] = None
            else:  # the zero point costs nothing over itself
                point[derived] = (now - then) * 1000 / count if count else 0.0


def plot(curve: CurveMeasurement, path: Path) -> Path:
    """RSS and CPU against the followers connected: a line per transport and feed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (metric, label) in zip(axes, PLOTTED, strict=True):
        for transport in TRANSPORTS:
            for variant in VARIANTS:
                series = [p for p in curve.series(transport, variant) if p.get(metric) is not None]
                ax.plot([p["clients"] for p in series], [p[metric] for p in series],
                        marker="o", linestyle="-" if variant == "pushed" else "--",
                        label=f"{transport}, {variant}")  # fmt: skip
        ax.set_title(label)
        ax.set_xlabel("followers connected")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    return curves.save(fig, path)


def markdown(part: dict[str, Any]) -> list[str]:
    """bench.md's tables of the part `run` returned (the page shows the same)."""
    return curves.part_markdown(SLUG, part)
