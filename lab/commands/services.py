"""`lab up`, `lab down`, `lab status`: the native services as daemons under lab_home().

`up` starts the services (all, or `--only` some plus what they require),
prepares them (the Toxiproxy proxies, reset; the `shop` database, migrated and
seeded with COPY) and can be run again at any time: what runs is kept. `down`
stops them all and checks that no process and no port of the lab is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from lab.errors import LabError
from lab.paths import lab_home
from lab.services import Service, all_services, select, statuses
from lab.services._base import listeners, terminate_tree

__all__ = ["down", "run_down", "run_status", "run_up", "seed_postgres", "status", "up"]


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One `lab up` or `lab down` at a time per LAB_HOME."""
    lab_home().mkdir(parents=True, exist_ok=True)
    with (lab_home() / ".services.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                f"another `lab up` or `lab down` is running on {lab_home()}: wait for it"
            ) from None
        yield


def up(only: list[str] | None = None, rows: int = 1_000_000,
       console: Console | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Start (or keep) the services; return their statuses."""
    with _exclusive():
        return _up(only, rows, console or Console(stderr=True))


def _up(only: list[str] | None, rows: int, console: Console) -> list[dict[str, Any]]:
    chosen = select(only)
    for service in chosen:  # every check before anything starts
        service.preflight()
    for service in chosen:
        with console.status(f"{service.name}: starting"):
            started = service.start()
        word = "started" if started else "already up"
        console.print(f"{service.name}: {word} (port {service.port}, pid {service.pid()})")
        if service.name == "postgres":
            seed_postgres(rows, console)
    return [service.status() for service in chosen]


def seed_postgres(rows: int, console: Console) -> dict[str, int]:
    """Migrate `shop` and seed it with `rows` products, unless it holds them already."""
    from lab.services.postgres import direct_url
    from target_app.seed import seed

    progress = Progress(TextColumn("  seed {task.description:12}"), BarColumn(),
                        TextColumn("{task.completed:>12,.0f}/{task.total:,.0f}"),
                        TimeElapsedColumn(), console=console)  # fmt: skip
    tasks: dict[str, TaskID] = {}

    def report(table: str, done: int, total: int) -> None:
        if not tasks:
            progress.start()  # only when there is something to seed
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=total)
        progress.update(tasks[table], completed=done, total=max(total, done))

    started = time.perf_counter()
    try:
        counts = seed(direct_url(), rows, progress=report)
    finally:
        if tasks:
            for task in progress.tasks:  # the item count is an estimate: end the bar full
                progress.update(task.id, total=task.completed)
            progress.stop()
    seconds = time.perf_counter() - started
    if tasks:
        console.print(
            f"postgres: seeded {counts['products']:,} products "
            f"({sum(counts.values()):,} rows in all) in {seconds:.1f}s"
        )
    else:
        console.print(f"postgres: already seeded ({counts['products']:,} products)")
    return counts


def down(console: Console | None = None) -> list[str]:
    """Stop every service; a LabError when a process or port of the lab is left."""
    with _exclusive():
        return _down(console or Console(stderr=True))


def _down(console: Console) -> list[str]:
    stopped = []
    services = all_services()
    for service in reversed(services):
        if service.stop():
            stopped.append(service.name)
            console.print(f"{service.name}: stopped")
        for stray in service.strays():  # running without (or with a stale) pid file
            console.print(f"{service.name}: stopping pid {stray.pid}, which had no pid file")
            terminate_tree(stray.pid)
            stopped.append(service.name)
    left = _leftovers(services)
    if left:
        raise LabError(f"lab down left ports in use: {left}")
    if not stopped:
        console.print("nothing was running")
    return stopped


def _leftovers(services: list[Service]) -> str:
    ports = {port: s.name for s in services for port in s.ports()}
    deadline = time.monotonic() + 5  # a port closes a moment after its process exits
    while True:
        taken = listeners(list(ports))
        if not taken or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return ", ".join(
        f"{port} ({ports[port]}, pid {pid or '?'})" for port, pid in sorted(taken.items())
    )


def status() -> dict[str, Any]:
    """Every service's status, and the proxies with their toxics (when Toxiproxy runs)."""
    from lab.services.toxiproxy import proxies

    result: dict[str, Any] = {"lab_home": str(lab_home()), "services": statuses(), "proxies": {}}
    if any(s["name"] == "toxiproxy" and s["state"] == "up" for s in result["services"]):
        try:
            result["proxies"] = proxies()
        except LabError as exc:
            result["proxies_error"] = str(exc)
    return result


def run_up(only: list[str] | None, rows: int, console: Console) -> None:
    up(only, rows, console)
    _print_status(status(), console)
    print(lab_home())


def run_down(console: Console) -> None:
    down(console)


def run_status(as_json: bool, console: Console) -> None:
    data = status()
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _print_status(data, console)


def _print_status(data: dict[str, Any], console: Console) -> None:
    table = Table(title="lab services", title_justify="left")
    for column in ("service", "state", "port", "pid", "version", "health"):
        table.add_column(column)
    for s in data["services"]:
        state = "[green]up" if s["state"] == "up" else "[red]down"
        table.add_row(s["name"], state, str(s["port"]), str(s["pid"] or "-"),
                      s["version"] or "-", s["health"])  # fmt: skip
    console.print(table)
    if data["proxies"]:
        proxies = Table(title="toxiproxy", title_justify="left")
        for column in ("proxy", "enabled", "listen -> upstream", "toxics"):
            proxies.add_column(column)
        for name, proxy in sorted(data["proxies"].items()):
            toxics = ", ".join(_describe(t) for t in proxy.get("toxics") or []) or "none"
            proxies.add_row(name, "yes" if proxy.get("enabled") else "[red]no",
                            f"{proxy['listen']} -> {proxy['upstream']}", toxics)  # fmt: skip
        console.print(proxies)
    elif data.get("proxies_error"):
        console.print(f"toxiproxy: {data['proxies_error']}")
    console.print(f"logs: {data['lab_home']}/<service>/<service>.log")


def _describe(toxic: dict[str, Any]) -> str:
    attributes = " ".join(f"{k}={v}" for k, v in (toxic.get("attributes") or {}).items())
    share = "" if toxic.get("toxicity", 1) == 1 else f" toxicity={toxic['toxicity']}"
    return f"{toxic['name']} ({toxic['type']} {toxic['stream']} {attributes}{share})"
