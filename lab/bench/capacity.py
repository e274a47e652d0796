"""Capacity: the app on the shop mix, and the load generator on /healthz.

1. The shop mix, one uvicorn worker vs gunicorn with a worker per core. The
   single-worker scenario's seed asks for 1,000 req/s. Locust would take a core
   of its own to get near that on this 2-core machine, so this part drives the
   app with wrk (C, a fraction of the CPU per request) and the shop mix's reads
   (loadtests/wrk/shop_mix.lua). Both setups run the app as the lab does
   (instrumented, all faults off), one after the other, on the same database.
2. Locust's headroom: /healthz with one Locust process, then with a master and
   two workers (`--load-processes 2`), against one app, one after the other.
   The app is the cheapest the lab has (bare: LAB_INSTRUMENTATION=false, one
   uvicorn worker), so that the cores go to the load generator as far as they
   can; the CPU of each Locust process and of the app says which one was the
   limit: a process near 1.0 core is at its ceiling (one interpreter, one core).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from lab.app_server import AppConfig, AppServer
from lab.bench.overhead import locust_totals
from lab.errors import LabError
from lab.load import LoadConfig, LocustRun, latest_stats
from lab.processes import free_port, tree_of

__all__ = [
    "LOCUST_PROCESSES", "SCRIPT", "locust_headroom", "markdown", "parse_wrk", "run", "shop_mix",
]  # fmt: skip

SCRIPT = Path(__file__).resolve().parents[2] / "loadtests" / "wrk" / "shop_mix.lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """req/s, p50/p99 (ms), and errors from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rps:
        raise LabError(f"could not read wrk's output:\n{output}")
    result = {"rps": float(rps.group(1))}
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        result[f"p{pct}_ms"] = float(found.group(1)) * _UNITS[found.group(2)] if found else None  # type: ignore[assignment]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["errors"] = float(non_2xx.group(1) if non_2xx else 0) + float(
        sum(int(n) for n in sockets.groups()) if sockets else 0
    )
    requests = re.search(r"(\d+) requests in", output)
    result["requests"] = float(requests.group(1)) if requests else 0.0
    return result


def run(duration_s: float, connections: int, out: Path, rows: int = 10_000) -> dict[str, Any]:
    """Both parts: `shop_mix` (wrk) and `locust_headroom`."""
    from lab.seeding import seed_database

    db, _counts = seed_database(rows)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "shop_mix": shop_mix(db, duration_s, connections, out, rows),
        "locust_headroom": locust_headroom(db, duration_s, out, rows),
    }


def shop_mix(db: str, duration_s: float, connections: int, out: Path, rows: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed: `make services` installs it"}
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"cores": cores, "connections": connections,
                               "duration_s": duration_s, "setups": {}}  # fmt: skip
    for name, workers in (("uvicorn x1", 1), (f"gunicorn x{cores}", cores)):
        config = AppConfig(port=free_port(), workers=workers)
        config.env = {"DATABASE_URL": db, "FAULTS": "", "LAB_SEED_ROWS": str(rows),
                      "LAB_STATE_FILE": str(out / "toggles.json")}  # fmt: skip
        slug = name.replace(" ", "-")
        app = AppServer(
            config, out / f"{slug}-app.log", out / f"{slug}-prom" if workers > 1 else None
        )
        app.start()
        try:
            done = subprocess.run(
                ["wrk", "-t2", f"-c{connections}", f"-d{int(duration_s)}s", "--latency",
                 "-s", str(SCRIPT), config.base_url],
                capture_output=True, text=True, timeout=duration_s + 60, check=False,
                env={**os.environ, "LAB_SEED_ROWS": str(rows)},
            )  # fmt: skip
        finally:
            app.stop()
        (out / f"{slug}-wrk.txt").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise LabError(f"wrk failed on {name} (exit {done.returncode}): {done.stderr.strip()}")
        results["setups"][name] = {"workers": workers, **parse_wrk(done.stdout)}
    one, many = results["setups"].values()
    results["throughput_ratio"] = many["rps"] / one["rps"] if one["rps"] else None
    return results


# Locust on /healthz, as one process and as a master with two workers.
LOCUST_PROCESSES = (1, 2)
MACHINE = -1  # the key of the whole machine's CPU among the pids sampled
# Users per Locust process: each user waits for its answer, and 32 on a ~1 ms
# route keep a process busy, so that the process, not its users, is the limit.
USERS_PER_PROCESS = 32


def locust_headroom(db: str, duration_s: float, out: Path, rows: int) -> dict[str, Any]:
    """Locust's req/s on /healthz with each LOCUST_PROCESSES, against one bare app.

    Rounds in the order 1, 2, 2, 1 (ABBA): a neighbour's drift over the part falls
    on both setups alike; each field is the mean of a setup's two rounds.
    """
    cores = len(os.sched_getaffinity(0))
    results: dict[str, Any] = {"cores": cores, "duration_s": duration_s,
                               "users_per_process": USERS_PER_PROCESS, "setups": {}}  # fmt: skip
    runnable = [n for n in LOCUST_PROCESSES if n <= cores]  # the runner refuses more too
    for processes in LOCUST_PROCESSES:
        if processes not in runnable:
            results["setups"][f"Locust x{processes}"] = {"skipped": f"{cores} core(s)"}
    config = AppConfig(port=free_port())
    config.env = {"DATABASE_URL": db, "FAULTS": "", "LAB_INSTRUMENTATION": "false",
                  "LAB_STATE_FILE": str(out / "headroom-toggles.json")}  # fmt: skip
    app = AppServer(config, out / "headroom-app.log", None)
    app.start()
    rounds: dict[int, list[dict[str, Any]]] = {n: [] for n in runnable}
    try:
        for i, processes in enumerate([*runnable, *reversed(runnable)]):
            rounds[processes].append(_locust_round(
                config.base_url, app.pid, processes, duration_s,
                out / f"round{i + 1}-locust-x{processes}", rows,
            ))  # fmt: skip
    finally:
        app.stop()
    for processes, measured in rounds.items():
        results["setups"][f"Locust x{processes}"] = _mean_of(measured)
    ordered = [results["setups"][f"Locust x{n}"] for n in LOCUST_PROCESSES]
    if all("rps" in s for s in ordered) and ordered[0]["rps"]:
        results["throughput_ratio"] = ordered[1]["rps"] / ordered[0]["rps"]
    return results


def _mean_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One setup's rounds as one: numbers (and the CPU of each process) averaged."""
    out: dict[str, Any] = {"rounds_rps": [r["rps"] for r in rounds]}
    for key, value in rounds[0].items():
        if isinstance(value, dict):
            out[key] = {k: statistics.fmean(r[key].get(k, 0.0) for r in rounds) for k in value}
        else:
            out[key] = statistics.fmean(r[key] for r in rounds)
    out["processes"], out["users"] = int(out["processes"]), int(out["users"])
    return out


def _cpu_seconds(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used, over all cores."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def _locust_round(
    url: str, app_pid: int, processes: int, duration_s: float, run_dir: Path, rows: int
) -> dict[str, Any]:
    """One Locust run on /healthz; the CPU of each of its processes and of the app,
    in cores, over the time it had users (its start-up and its report left out)."""
    run_dir.mkdir(parents=True)
    users = USERS_PER_PROCESS * processes
    load = LocustRun(
        LoadConfig(workload="healthz", users=users, spawn_rate=users, duration_s=duration_s,
                   seed_rows=rows, load_processes=processes),
        url, run_dir,
    )  # fmt: skip
    # pid (MACHINE: all of them): (time, CPU seconds) when the load began, and lately.
    first: dict[int, tuple[float, float]] = {}
    last: dict[int, tuple[float, float]] = {}
    load.start()
    assert load.child is not None
    master = load.child.pid
    try:
        deadline = time.monotonic() + duration_s + 60
        while load.running() and time.monotonic() < deadline:
            if latest_stats(run_dir).get("users", 0) > 0:
                now = time.monotonic()
                samples = [(p.pid, _cpu_seconds(p)) for p in [*tree_of(master), *tree_of(app_pid)]]
                for pid, cpu in [*samples, (MACHINE, _machine_busy_seconds())]:
                    if cpu is not None:
                        first.setdefault(pid, (now, cpu))
                        last[pid] = (now, cpu)
            time.sleep(0.5)
    finally:
        load.stop()

    def cores_used(pid: int) -> float:
        (t0, c0), (t1, c1) = first[pid], last[pid]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    app_pids = {p.pid for p in tree_of(app_pid)} | {app_pid}
    locust_pids = sorted(pid for pid in first if pid not in app_pids | {MACHINE})
    if processes == 1:
        per_process = {"locust": cores_used(master)} if master in first else {}
    else:
        per_process = {"master": cores_used(master)} if master in first else {}
        workers = [pid for pid in locust_pids if pid != master]
        per_process |= {f"worker {i + 1}": cores_used(pid) for i, pid in enumerate(workers)}
    app_cores = sum(cores_used(pid) for pid in app_pids if pid in first)
    machine = cores_used(MACHINE) if MACHINE in first else 0.0
    return {
        "processes": processes, "users": users, **locust_totals(run_dir),
        "locust_cpu_cores": per_process, "app_cpu_cores": app_cores,
        # What neither used: on a shared machine, the neighbours' share of the cores.
        "other_cpu_cores": max(machine - app_cores - sum(per_process.values()), 0.0),
    }  # fmt: skip


def markdown(results: dict[str, Any]) -> list[str]:
    return [
        "Shop mix (wrk): one uvicorn worker vs a worker per core.",
        "",
        *_shop_mix_markdown(results["shop_mix"]),
        "",
        "Load generator: Locust on `/healthz`, one process vs a master and two workers "
        "(`--load-processes 2`), one bare app.",
        "",
        *_headroom_markdown(results["locust_headroom"]),
    ]


def _headroom_markdown(results: dict[str, Any]) -> list[str]:
    lines = [
        "| Locust | users | req/s | p99 ms | failures | Locust CPU per process (cores) "
        "| app CPU (cores) | other processes' CPU (cores) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["setups"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | | | |")
            continue
        cpu = ", ".join(f"{who} {cores:.2f}" for who, cores in r["locust_cpu_cores"].items())
        each = ", ".join(f"{rps:,.0f}" for rps in r.get("rounds_rps", []))
        lines.append(
            f"| {name} | {r['users']} | {r['rps']:,.0f}{f' ({each})' if each else ''} "
            f"| {r['p99_ms']:.0f} "
            f"| {r['failures']:.0f} | {cpu} | {r['app_cpu_cores']:.2f} "
            f"| {r['other_cpu_cores']:.2f} |"
        )
    lines.append("")
    ratio = results.get("throughput_ratio")
    lines.append(
        (f"x2/x1 throughput ratio: {ratio:.2f}" if ratio is not None else "no ratio")
        + f" ({results['cores']} cores shared by the app and Locust; each setup the mean of "
        f"two {results['duration_s']:g} s rounds, in the order x1 x2 x2 x1, their req/s in "
        f"brackets; {results['users_per_process']} users per process). "
        "A Locust process near 1.00 core is at its own ceiling, the app near 1.00 at its; "
        "other processes' CPU is what the machine's neighbours took meanwhile."
    )
    return lines


def _shop_mix_markdown(results: dict[str, Any]) -> list[str]:
    if "skipped" in results:
        return [f"skipped: {results['skipped']}"]
    lines = ["| setup | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|"]
    for name, r in results["setups"].items():
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {r['p50_ms'] or 0:.1f} | {r['p99_ms'] or 0:.1f} "
            f"| {r['errors']:.0f} |"
        )
    lines.append("")
    lines.append(
        f"gunicorn/uvicorn throughput ratio: {results['throughput_ratio']:.2f} "
        f"({results['cores']} cores, wrk {results['connections']} connections, "
        f"{results['duration_s']:g} s each; 1,000 req/s target)"
    )
    return lines
