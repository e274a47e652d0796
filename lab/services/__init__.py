"""The lab's native services: PostgreSQL, Redis, Toxiproxy, Prometheus and upstream.

One module per service, found by walking this package: a module that defines
`SERVICE` (a `Service`) is a service; modules whose name starts with `_` are
helpers. `lab up` / `lab down` / `lab status` (lab/commands/services.py) drive them.

`lab up --only NAME` also starts what NAME `requires`: PostgreSQL, Redis and
upstream require Toxiproxy, because the app reaches them only through its
proxies (lab/topology.py). Prometheus is never pulled in: it is optional.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any

from lab.errors import LabError
from lab.services._base import Service

__all__ = ["Service", "all_services", "get_service", "select", "statuses"]


def all_services() -> list[Service]:
    """Every service module's SERVICE, in start order."""
    found: list[Service] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        service = getattr(module, "SERVICE", None)
        if isinstance(service, Service):
            found.append(service)
    return sorted(found, key=lambda s: (s.rank, s.name))


def get_service(name: str) -> Service:
    for service in all_services():
        if service.name == name:
            return service
    names = ", ".join(s.name for s in all_services())
    raise LabError(f"there is no service '{name}': the services are {names}")


def select(only: Iterable[str] | None = None) -> list[Service]:
    """The services named (all when none), plus those they require, in start order."""
    everything = all_services()
    names = list(only or [])
    if not names:
        return everything
    wanted: set[str] = set()
    todo = [get_service(name).name for name in names]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(get_service(name).requires)
    return [s for s in everything if s.name in wanted]


def statuses() -> list[dict[str, Any]]:
    """status() of every service, in start order. Never raises."""
    return [service.status() for service in all_services()]
