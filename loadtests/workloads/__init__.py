"""One module per workload; each defines `USERS`, the Locust user classes it runs.

With LAB_RATE set, `user_classes` gives them on the open model
(loadtests/open_model.py): the workloads themselves know nothing of it.
"""

from __future__ import annotations

import importlib
import pkgutil

from loadtests.schedule import rate_from_env

__all__ = ["available", "user_classes"]


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def user_classes(name: str) -> list[type]:
    if name not in available():
        raise ValueError(f"unknown workload '{name}'; valid: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{name}")
    if rate_from_env() is None:
        return list(module.USERS)
    # Imported here: the lab imports this package (available()), and open_model
    # imports Locust, whose gevent monkey-patching must stay out of the lab.
    from loadtests.open_model import open_user_class

    return [open_user_class(cls) for cls in module.USERS]
