"""Capacity on the shop mix: one uvicorn worker vs gunicorn with a worker per core.

The single-worker scenario's seed asks for 1,000 req/s. Locust would take a
core of its own to get near that on this 2-core machine, so this part drives
the app with wrk (C, a fraction of the CPU per request) and the shop mix's
reads (loadtests/wrk/shop_mix.lua). Both setups run the app as the lab does
(instrumented, all faults off), one after the other, on the same database.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lab.app_server import AppConfig, AppServer
from lab.errors import LabError
from lab.processes import free_port

__all__ = ["SCRIPT", "markdown", "parse_wrk", "run"]

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
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed: `make services` installs it"}
    from lab.seeding import seed_database

    db, _counts = seed_database(rows)
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"cores": cores, "connections": connections,
                               "duration_s": duration_s, "setups": {}}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
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


def markdown(results: dict[str, Any]) -> list[str]:
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
