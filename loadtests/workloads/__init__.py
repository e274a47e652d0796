"""One module per workload; each defines `USERS`, the Locust user classes it runs."""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["available", "user_classes"]


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def user_classes(name: str) -> list[type]:
    if name not in available():
        raise ValueError(f"unknown workload '{name}'; valid: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{name}")
    return list(module.USERS)
