"""upstream-flaky's breaker through a provider outage: how fast the refusals are.

The fixed variant under an open-model load (RATE payments a second, latency
from each request's intended send time), the provider taken down for
OUTAGE_S in the middle of the run (lab/outage.py). The issue's target: while
the provider is down, p99 of the refused payments under 10 ms. The contract
test (tests/scenarios/test_upstream_outage.py) proves the machine-independent
half, that a refusal is no slower than a paid call of the same run; this part
puts the absolute number next to the machine it was measured on.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from lab import topology
from lab.bench.catalogue import environ
from lab.outage import Outage, OutageWindow
from lab.runner import RunOptions, available_services
from lab.runner import run as run_variant
from reports.evidence import load_evidence
from reports.latency import request_latencies

__all__ = ["OUTAGE_S", "RATE", "SLUG", "TARGET_P99_MS", "markdown", "run"]

SLUG = "upstream-flaky"
PAY = "POST /orders/{order_id}/pay"
RATE = 50.0  # payments a second, offered whatever the app answers
BEFORE_S, OUTAGE_S, DURATION_S = 15.0, 20.0, 55.0
TARGET_P99_MS = 10.0  # the issue's: refused calls fail fast, p99 < 10 ms


def run(out: Path) -> dict[str, Any]:
    """The run's numbers, or {"skipped": why} when its services are not up."""
    missing = {"upstream", "toxiproxy"} - available_services()
    if missing:
        return {"skipped": f"needs {', '.join(sorted(missing))}: `make up` first"}
    provider = httpx.Client(
        base_url=f"http://{topology.LINKS['upstream'].direct}", timeout=10
    )  # fmt: skip
    provider.delete("/_control/charges")  # "ready" below is the run's first charge
    outage = Outage("upstream", before_s=BEFORE_S, for_s=OUTAGE_S)
    finished = threading.Event()
    windows: list[OutageWindow] = []
    errors: list[BaseException] = []

    def beside() -> None:
        try:
            windows.append(outage.during(
                ready=lambda: provider.get("/_control/charges").json()["total"] > 0,
                alive=lambda: not finished.is_set(),
            ))  # fmt: skip
        except BaseException as exc:  # reported below, after the run ended
            errors.append(exc)

    thread = threading.Thread(target=beside, name="outage", daemon=True)
    thread.start()
    # Polling a pending payment is another request a second per checkout: off, so
    # the offered load stays RATE payments a second.
    with environ("LAB_POLL_FOR_S", "0"):
        result = run_variant(
            RunOptions(SLUG, fixed=True, rate=RATE, duration_s=DURATION_S, out=out),
            Console(file=io.StringIO()),
        )
    finished.set()
    thread.join()
    provider.close()
    numbers: dict[str, Any] = {"run": str(result.run_dir), "rate": RATE, "status": result.status}
    if errors or not windows or result.status != "completed":
        numbers["skipped"] = f"{errors[0] if errors else result.error} ({result.run_dir})"
        return numbers
    window = windows[0]
    latencies = request_latencies(load_evidence(result.run_dir))
    if latencies is None:
        numbers["skipped"] = f"no request log in {result.run_dir}"
        return numbers
    healthy, refused = window.split(latencies, PAY)
    numbers.update(
        healthy_count=len(healthy),
        healthy_p99_ms=float(healthy.quantile(0.99)) if len(healthy) else None,
        refused_count=len(refused),
        refused_p50_ms=float(refused.quantile(0.5)) if len(refused) else None,
        refused_p99_ms=float(refused.quantile(0.99)) if len(refused) else None,
    )
    p99 = numbers["refused_p99_ms"]
    numbers["met"] = None if p99 is None else p99 < TARGET_P99_MS
    return numbers


def markdown(numbers: dict[str, Any]) -> list[str]:
    if "skipped" in numbers:
        return [f"skipped: {numbers['skipped']}"]
    met = {True: "yes", False: "**no**", None: "not measured"}[numbers["met"]]
    return [
        f"{SLUG} fixed at {numbers['rate']:g} payments/s, the provider down {OUTAGE_S:g} s "
        "mid-run (latency from the intended send time):",
        "",
        "| window | payments | p99 ms |",
        "|---|---|---|",
        f"| provider up (paid) | {numbers['healthy_count']} | {_ms(numbers['healthy_p99_ms'])} |",
        f"| provider down (refused by the breaker) | {numbers['refused_count']} "
        f"| {_ms(numbers['refused_p99_ms'])} |",
        "",
        f"Target: refused p99 < {TARGET_P99_MS:g} ms: {met}. Run dir: {numbers['run']}",
    ]


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
