"""`lab serve [SLUG] [--fixed]`: the app alone, in the foreground, for exploring by hand."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from pathlib import Path

from rich.console import Console

import faults
from lab.app_server import AppConfig, app_command
from lab.errors import LabError
from lab.paths import database_url_for, lab_home

__all__ = ["run"]


def run(
    slug: str | None,
    fixed: bool = False,
    workers: int | None = None,
    port: int = 8000,
    params: dict[str, object] | None = None,
    seed_rows: int = 10_000,
    console: Console | None = None,
) -> int:
    from lab.commands.seed import run as seed

    console = console or Console(stderr=True)
    store = faults.ToggleStore(lab_home() / "state" / f"serve-{port}.json")
    store.reset()
    if slug:
        try:
            scenario = faults.get(slug)
            valid = faults.validate_params(scenario, params or {})
        except (faults.UnknownScenario, faults.InvalidParams) as exc:
            raise LabError(str(exc)) from None
        if not fixed:
            store.enable(slug, valid.model_dump(mode="json"))
        if workers is None:
            deployment = scenario.deployment("fixed" if fixed else "faulty", valid)
            workers = deployment.resolved_workers if deployment else None
    workers = workers or 1
    seed(seed_rows, console=console)
    token = os.environ.get("LAB_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    config = AppConfig(port=port, workers=workers)
    multiproc = lab_home() / "prometheus" / f"serve-{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for(seed_rows),
        "LAB_STATE_FILE": str(store.path),
        "LAB_ADMIN_ENABLED": "true",
        "LAB_ADMIN_TOKEN": token,
        "FAULTS": "",
    }
    if workers > 1:
        multiproc.mkdir(parents=True, exist_ok=True)
        for stale in multiproc.glob("*.db"):
            stale.unlink()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    variant = "fixed" if fixed or not slug else "faulty"
    console.print(
        f"serving {config.base_url} ({config.server} x{workers}); "
        f"{slug or 'no scenario'}: {variant}\n"
        f"  metrics: {config.base_url}/metrics   docs: {config.base_url}/docs\n"
        f"  toggles: curl -H 'Authorization: Bearer {token}' {config.base_url}/_lab/faults\n"
        "Ctrl-C stops it."
    )
    process = subprocess.Popen(app_command(config), env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait(timeout=20)
    finally:
        store.reset()
        with contextlib.suppress(FileNotFoundError):
            Path(store.path).unlink()
