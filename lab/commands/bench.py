"""`lab bench`: the catalogue's faulty/fixed ratios, capacity and overhead, in one run.

Everything is measured side by side in this run and reported as ratios; the
numbers belong to the machine, which is written next to them. The tables go
to stdout-free files: runs/bench/<time>/bench.md and bench.json (the last line
printed is that directory). Ctrl-C keeps what was measured so far.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import faults
from lab.bench import (
    capacity,
    catalogue,
    heavy_json_steps,
    log_transports,
    outage,
    overhead,
    slo_sweep,
    worker_sizing,
)
from lab.errors import LabError

__all__ = ["PARTS", "run"]

PARTS = (
    "catalogue", "capacity", "overhead", "outage", "slo-sweep", "heavy-json-steps",
    "worker-sizing", "log-transports",
)  # fmt: skip


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def run(
    parts: Sequence[str] = PARTS,
    slugs: Sequence[str] | None = None,
    duration_s: float | None = None,
    users: int = 32,
    rounds: int = 3,
    out: Path = Path("runs/bench"),
    console: Console | None = None,
) -> Path:
    console = console or Console(stderr=True)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise LabError(f"unknown bench part {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    for slug in slugs or ():
        try:
            faults.get(slug)
        except faults.UnknownScenario as exc:
            raise LabError(f"{exc}. See `lab scenarios`.") from None
    out = out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    results: dict[str, Any] = {"machine": _machine(), "parts": list(parts)}
    rows: list[catalogue.CatalogueRow] | None = None
    try:
        if "catalogue" in parts:
            rows, interrupted = _catalogue(slugs, duration_s, out, console)
            results["catalogue"] = {"rows": [r.as_dict() for r in rows],
                                    "targets": catalogue.check_targets(rows)}  # fmt: skip
            if interrupted:  # the scenarios measured so far still make their rows
                raise KeyboardInterrupt
        if "capacity" in parts:
            with console.status(
                "capacity: the shop mix on one worker, then a worker per core; "
                "Locust on /healthz as one process, then two"
            ):
                results["capacity"] = capacity.run(duration_s or 15.0, 64, out / "capacity")
        if "overhead" in parts:
            results["overhead"] = overhead.run(
                duration_s or 10.0, users, rounds, out / "overhead", console
            )
        if "outage" in parts:
            with console.status(
                f"outage: {outage.SLUG} fixed at {outage.RATE:g} payments/s, the provider "
                f"down {outage.OUTAGE_S:g} s mid-run"
            ):
                results["outage"] = outage.run(out / "outage")
        if "slo-sweep" in parts:
            results["sweep"] = {}
            for slug in slo_sweep.SWEPT:
                results["sweep"][slug] = _stepped(console, f"slo-sweep {slug}", partial(
                    slo_sweep.run, out / "bench.json", out / "sweep", slug=slug))  # fmt: skip
        if "heavy-json-steps" in parts:
            with console.status("heavy-json step by step: each step in a fresh process"):
                results["steps"] = {
                    heavy_json_steps.SLUG: heavy_json_steps.bench_part(out / "bench.json")
                }
        if "worker-sizing" in parts:
            results.setdefault("curve", {})[worker_sizing.SLUG] = _stepped(
                console, "worker-sizing",
                partial(worker_sizing.run, out / "bench.json", out / "worker-sizing"))  # fmt: skip
        if "log-transports" in parts:
            results.setdefault("curve", {})[log_transports.SLUG] = _stepped(
                console, "log-transports",
                partial(log_transports.run, out / "bench.json", out / "log-transports"),
            )  # fmt: skip
    except KeyboardInterrupt:
        results["interrupted"] = True
        console.print("[yellow]interrupted: writing what was measured so far")
    _write(results, rows, out)
    console.print((out / "bench.md").read_text())
    console.print(f"bench: {out / 'bench.md'}")
    return out


def _stepped(console: Console, part: str, measure: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A part that runs step after step (`measure(progress=...)`), its status line
    saying which step it is on."""
    with console.status(part) as status:
        return measure(progress=lambda text: status.update(f"{part}: {text}"))


def _catalogue(
    slugs: Sequence[str] | None, duration_s: float | None, out: Path, console: Console
) -> tuple[list[catalogue.CatalogueRow], bool]:
    count = len(slugs) if slugs else len(faults.all_scenarios())
    with Progress(
        TextColumn("catalogue: {task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("", total=count * 2)
        return catalogue.run(
            slugs, duration_s, out / "runs",
            lambda description, done: progress.update(task, description=description,
                                                      advance=done),
        )  # fmt: skip


def _write(results: dict[str, Any], rows: list[catalogue.CatalogueRow] | None, out: Path) -> None:
    machine = results["machine"]
    lines = [
        "# lab bench",
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['memory_gb']} GB, {machine['platform']}, "
        f"Python {machine['python']}; {machine['date']}.",
    ]
    if results.get("interrupted"):
        lines += ["", "**Interrupted**: the tables hold what was measured before Ctrl-C."]
    if rows is not None:
        lines += ["", "## Catalogue: faulty vs fixed, each under its default load", "",
                  *catalogue.markdown(rows, results["catalogue"]["targets"])]  # fmt: skip
    if "capacity" in results:
        lines += [
            "",
            "## Capacity: the shop mix (wrk), and the load generator's headroom (Locust)",
            "",
            *capacity.markdown(results["capacity"]),
        ]
    if "overhead" in results:
        lines += ["", "## Instrumentation overhead and load-driver headroom", "",
                  *overhead.markdown(results["overhead"])]  # fmt: skip
    if "outage" in results:
        lines += ["", "## Circuit breaker through a provider outage", "",
                  *outage.markdown(results["outage"])]  # fmt: skip
    if "sweep" in results:
        for slug, part in results["sweep"].items():
            lines += ["", f"## Throughput at the SLO: {slug}, the rate stepped", "",
                      *slo_sweep.markdown(part, slug)]  # fmt: skip
    if "steps" in results:
        steps = results["steps"][heavy_json_steps.SLUG]
        lines += ["", "## heavy-json, one change at a time", "",
                  *heavy_json_steps.part_markdown(steps)]  # fmt: skip
    curves = results.get("curve", {})
    if worker_sizing.SLUG in curves:
        lines += ["", f"## Workers: {worker_sizing.SLUG}, count x type x mix", "",
                  *worker_sizing.markdown(curves[worker_sizing.SLUG])]  # fmt: skip
    if log_transports.SLUG in curves:
        lines += ["", f"## Live-log clients: {log_transports.SLUG}, followers x transport x feed",
                  "", *log_transports.markdown(curves[log_transports.SLUG])]  # fmt: skip
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
