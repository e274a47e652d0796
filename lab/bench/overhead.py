"""What the lab itself costs, measured side by side in one run.

1. Instrumentation overhead: the product page (the shop's busiest route) on
   two apps running at once, one with metrics, timing and fault seams on (all
   faults off), one with LAB_INSTRUMENTATION=false. Each is warmed up, then
   Locust drives them in alternating rounds (A B A B ...) so that drift of a
   shared, noisy machine falls on both; the ratio of medians is reported.
2. Load-driver headroom: Locust and wrk on /healthz of the bare app. If
   Locust reaches far more than any scenario's RPS, it is not the bottleneck.

Ratios, never wall-clock thresholds: the numbers depend on the machine.
"""

from __future__ import annotations

import csv
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from lab.app_server import AppConfig, AppServer
from lab.errors import LabError
from lab.load import LoadConfig, LocustRun
from lab.processes import free_port, tree_of

__all__ = ["locust_totals", "markdown", "round_ratios", "run", "wrk_rps"]


def locust_totals(run_dir: Path) -> dict[str, float]:
    with (run_dir / "locust_stats.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                return {
                    "rps": float(row["Requests/s"]),
                    "p99_ms": float(row["99%"]),
                    "requests": float(row["Request Count"]),
                    "failures": float(row["Failure Count"]),
                }
    raise LabError(f"no Aggregated row in {run_dir / 'locust_stats.csv'}")


def round_ratios(rounds_data: dict[str, list[dict[str, float]]]) -> list[float]:
    """Instrumented/bare RPS of each round, whose two runs were back to back: their
    spread shows how far the machine drifted, which the ratio of medians hides."""
    return [
        instrumented["rps"] / bare["rps"]
        for instrumented, bare in zip(rounds_data["instrumented"], rounds_data["bare"], strict=True)
    ]


def wrk_rps(output: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise LabError(f"could not read wrk's output:\n{output}")
    return float(match.group(1))


def _cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in tree_of(pid):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _locust(
    url: str, workload: str, users: int, duration: float, rows: int, out: Path,
    app_pid: int | None = None,
) -> dict[str, float]:  # fmt: skip
    """One Locust round; with `app_pid`, also the app's CPU per request.

    CPU per request is the steadier number on a shared machine: a neighbour
    steals throughput from both apps, but not CPU time from one request.
    """
    out.mkdir(parents=True)
    cpu_before = _cpu_seconds(app_pid) if app_pid else 0.0
    config = LoadConfig(
        workload=workload, users=users, spawn_rate=users, duration_s=duration, seed_rows=rows
    )
    load = LocustRun(config, url, out)
    load.start()
    try:
        assert load.child is not None
        load.child.process.wait(timeout=duration + 60)
    finally:
        load.stop()
    totals = locust_totals(out)
    if app_pid:
        cpu = _cpu_seconds(app_pid) - cpu_before
        totals["cpu_ms_per_request"] = cpu * 1000 / max(totals["requests"], 1)
    return totals


WARM_UP_S = 5.0


def run(
    duration: float, users: int, rounds: int, out: Path, console: Console | None = None
) -> dict[str, Any]:
    from lab.seeding import seed_database

    console = console or Console(stderr=True)
    rows = 10_000
    db, _counts = seed_database(rows, console=console)
    out.mkdir(parents=True)
    apps: dict[str, AppServer] = {}
    results: dict[str, Any] = {"duration_s": duration, "users": users, "rounds": rounds}
    try:
        for name, instrumented in (("instrumented", "true"), ("bare", "false")):
            config = AppConfig(port=free_port())
            config.env = {
                "DATABASE_URL": db,
                "LAB_INSTRUMENTATION": instrumented,
                "LAB_STATE_FILE": str(out / f"{name}-toggles.json"),
                "FAULTS": "",
            }
            apps[name] = AppServer(config, out / f"{name}-app.log", None)
            apps[name].start()
        rounds_data: dict[str, list[dict[str, float]]] = {"instrumented": [], "bare": []}
        steps = rounds * 2 + 4
        with Progress(console=console) as progress:
            task = progress.add_task("benchmark", total=steps)
            # Each app warmed up first, unmeasured: its connections' page caches, the
            # ORM's compiled statements. Without it the first round's first app (the
            # instrumented one) ran cold, and that round was the lowest ratio in
            # every bench on record (0.875, 0.879, 0.938 against 0.92-1.04 after).
            for name in ("instrumented", "bare"):
                progress.update(task, description=f"warm-up: {name}")
                _locust(apps[name].config.base_url, "product_page", users, WARM_UP_S, rows,
                        out / f"warmup-{name}")  # fmt: skip
                progress.advance(task)
            for i in range(rounds):
                order = ("instrumented", "bare") if i % 2 == 0 else ("bare", "instrumented")
                for name in order:
                    progress.update(task, description=f"round {i + 1}/{rounds}: {name}")
                    rounds_data[name].append(
                        _locust(apps[name].config.base_url, "product_page", users, duration, rows,
                                out / f"round{i + 1}-{name}", app_pid=apps[name].pid)
                    )  # fmt: skip
                    progress.advance(task)
            progress.update(task, description="Locust on /healthz")
            bare_url = apps["bare"].config.base_url
            results["locust_healthz"] = _locust(
                bare_url, "healthz", users, duration, rows, out / "driver-locust"
            )
            progress.advance(task)
            progress.update(task, description="wrk on /healthz")
            results["wrk_healthz_rps"] = _wrk(f"{bare_url}/healthz", users, duration)
            progress.advance(task)
    finally:
        for app in apps.values():
            app.stop()
    results["rounds_data"] = rounds_data
    med = {
        name: {
            k: statistics.median(r[k] for r in data)
            for k in ("rps", "p99_ms", "cpu_ms_per_request")
        }
        for name, data in rounds_data.items()
    }
    results["median"] = med
    results["throughput_ratio"] = med["instrumented"]["rps"] / med["bare"]["rps"]
    results["round_ratios"] = round_ratios(rounds_data)
    results["p99_ratio"] = med["instrumented"]["p99_ms"] / max(med["bare"]["p99_ms"], 1e-9)
    results["cpu_per_request_ratio"] = (
        med["instrumented"]["cpu_ms_per_request"] / med["bare"]["cpu_ms_per_request"]
    )
    wrk = results["wrk_healthz_rps"]
    results["locust_vs_wrk"] = results["locust_healthz"]["rps"] / wrk if wrk else None
    _print(results, console)
    return results


def _wrk(url: str, connections: int, duration: float) -> float | None:
    if shutil.which("wrk") is None:
        return None  # reported as missing; `make services` installs it
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    )  # fmt: skip
    return wrk_rps(proc.stdout)


def _print(results: dict[str, Any], console: Console) -> None:
    med = results["median"]
    table = Table(title="Instrumentation overhead on GET /products/{id} (median of rounds)")
    for column in ("app", "RPS", "p99 ms", "app CPU ms/request"):
        table.add_column(column)
    for name in ("bare", "instrumented"):
        table.add_row(
            name,
            f"{med[name]['rps']:.0f}",
            f"{med[name]['p99_ms']:.0f}",
            f"{med[name]['cpu_ms_per_request']:.3f}",
        )
    console.print(table)
    console.print(
        f"throughput ratio instrumented/bare: {results['throughput_ratio']:.3f} (target >= 0.95; "
        f"per round: {_rounds(results)}); p99 ratio: {results['p99_ratio']:.2f}; "
        f"CPU per request ratio: {results['cpu_per_request_ratio']:.3f}"
    )
    wrk = results["wrk_healthz_rps"]
    locust_rps = results["locust_healthz"]["rps"]
    console.print(
        f"load driver on /healthz: Locust {locust_rps:.0f} RPS, "
        + (f"wrk {wrk:.0f} RPS (ratio {locust_rps / wrk:.2f})" if wrk else "wrk not installed")
    )


def _rounds(results: dict[str, Any]) -> str:
    return ", ".join(f"{r:.3f}" for r in results["round_ratios"])


def markdown(results: dict[str, Any]) -> list[str]:
    med = results["median"]
    wrk = results["wrk_healthz_rps"]
    locust_rps = results["locust_healthz"]["rps"]
    return [
        "| app | RPS | p99 ms | app CPU ms/request |",
        "|---|---|---|---|",
        *(
            f"| {n} | {med[n]['rps']:.0f} | {med[n]['p99_ms']:.0f} "
            f"| {med[n]['cpu_ms_per_request']:.3f} |"
            for n in ("bare", "instrumented")
        ),
        "",
        f"throughput ratio: {results['throughput_ratio']:.3f} (per round: {_rounds(results)}); "
        f"p99 ratio: {results['p99_ratio']:.2f}; "
        f"CPU per request ratio: {results['cpu_per_request_ratio']:.3f}",
        f"Locust /healthz: {locust_rps:.0f} RPS; wrk /healthz: {wrk or 'n/a'}",
    ]
