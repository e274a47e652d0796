"""`lab serve [SLUG] [--fixed]`: the app alone, in the foreground, for exploring by hand.

Ctrl-C and SIGTERM stop it alike: the app (a gunicorn master takes its workers
with it) is stopped and the toggles are reset, in reverse order of set-up, as a
run does (lab/undo.py). The app runs as the runner starts it (lab/app_server.py):
in its own session, so a Ctrl-C reaches the lab alone and the lab stops the app in
order, and with PR_SET_PDEATHSIG, so even a `kill -9` of the lab takes it along.
Its output goes to the terminal.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from typing import Any

from rich.console import Console

import faults
from lab.app_server import AppConfig, AppServer
from lab.errors import LabError
from lab.paths import lab_home
from lab.seeding import seed_database
from lab.undo import UndoStack, raise_if_interrupted, signals_as_interrupt

__all__ = ["INTERRUPTED", "run"]

INTERRUPTED = 130  # the exit code of a command stopped by Ctrl-C or SIGTERM, as `lab run`'s


def run(
    slug: str | None,
    fixed: bool = False,
    workers: int | None = None,
    port: int = 8000,
    params: dict[str, object] | None = None,
    seed_rows: int | None = None,  # None: the scenario's catalogue (lab.runner.catalogue_rows)
    console: Console | None = None,
) -> int:
    """Serve until the app exits (its exit code) or the lab is interrupted (130).

    Either way, on the way out of the `with`, the undo stack stops the app, then
    resets and removes the toggles.
    """
    from lab.runner import catalogue_rows

    console = console or Console(stderr=True)
    variant: faults.Variant = "fixed" if fixed or not slug else "faulty"
    enabled: dict[str, object] | None = None
    scenario = None
    deployment: faults.Deployment | None = None
    if slug:
        try:
            scenario = faults.get(slug)
            valid = faults.validate_params(scenario, params or {})
        except (faults.UnknownScenario, faults.InvalidParams) as exc:
            raise LabError(str(exc)) from None
        if scenario.kind == "release":
            # Its variants are deploy procedures: nothing to serve until a deploy runs.
            raise LabError(
                f"'{slug}' is a release scenario: its variants deploy a new release "
                f"during a load; run `lab run {slug}` or `lab run {slug} --fixed`"
            )
        if variant == "faulty" or params:
            # --fixed --param: the fixed variant with those params (faults/_toggles.py).
            enabled = valid.model_dump(mode="json")
        deployment = scenario.deployment(variant, valid)
        if workers is None:
            workers = deployment.resolved_workers if deployment else scenario.app_workers
    workers = workers or 1
    if workers < 1:
        raise LabError(f"--workers must be at least 1, got {workers}")
    seed_rows = catalogue_rows(scenario, seed_rows)
    if seed_rows < 1:
        raise LabError(f"--rows must be at least 1, got {seed_rows}")

    with signals_as_interrupt(), UndoStack() as undo:
        try:
            return _serve(
                undo, slug, enabled, variant, workers, port, seed_rows, console, deployment
            )
        except KeyboardInterrupt:
            console.print("[yellow]stopping the app")
            return INTERRUPTED


def _services_of(scenario: faults.Scenario[Any, Any] | None, console: Console) -> dict[str, str]:
    """The app's settings for the scenario's services that answer; a line for each that
    does not, and for the job workers `lab serve` does not start."""
    from lab.runner import available_services, scenario_service_env

    if scenario is None or not scenario.requires:
        return {}
    up = available_services()
    missing = [name for name in scenario.requires if name not in up]
    if missing:
        console.print(
            f"[yellow]{', '.join(missing)} not running: `make up` starts the lab's services; "
            "the routes that need them answer 503 until then"
        )
    if scenario.job_workers:
        console.print(
            f"[yellow]{scenario.slug} runs its jobs in job workers, which `lab serve` does not "
            "start: `lab run` does"
        )
    return scenario_service_env(scenario, up)


def _serve(
    undo: UndoStack, slug: str | None, enabled: dict[str, object] | None,
    variant: faults.Variant, workers: int, port: int, seed_rows: int, console: Console,
    deployment: faults.Deployment | None = None,
) -> int:  # fmt: skip
    """Set up, pushing each undo as it goes; then wait for the app to exit."""
    store = faults.ToggleStore(lab_home() / "state" / f"serve-{port}.json")
    undo.push("reset toggles", store.discard)
    store.reset()
    if slug and enabled is not None:
        store.enable(slug, enabled, variant)
    scenario = faults.get(slug) if slug else None
    # The addresses of the scenario's services that run, as `lab run` gives them.
    services = _services_of(scenario, console)
    database_url = services.pop("DATABASE_URL", None)
    if database_url is None:
        database_url, _counts = seed_database(seed_rows, console=console)
    token = os.environ.get("LAB_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    config = AppConfig(port=port, workers=workers)
    if deployment is not None:  # the variant's worker type; the count may be --workers'
        config.worker_class, config.threads = deployment.worker_class, deployment.threads
    config.env = {
        "DATABASE_URL": database_url,
        "LAB_STATE_FILE": str(store.path),
        "LAB_ADMIN_ENABLED": "true",
        "LAB_ADMIN_TOKEN": token,
        "FAULTS": "",
        **services,
        **(scenario.app_env if scenario else {}),
    }
    multiproc = lab_home() / "prometheus" / f"serve-{port}" if config.server == "gunicorn" else None
    app = AppServer(config, None, multiproc)  # None: its output goes to the terminal
    undo.push("stop app", app.stop)  # before start(): stopped even if it never gets ready
    with console.status(f"starting the app on {config.base_url}"):
        app.start()
    url = config.base_url
    console.print(
        f"serving {url} ({config.label}); {slug or 'no scenario'}: {variant}\n"
        f"  metrics: {url}/metrics   docs: {url}/docs\n"
        f"  toggles: curl -H 'Authorization: Bearer {token}' {url}/_lab/faults\n"
        "Ctrl-C stops it."
    )
    assert app.child is not None
    while True:  # polled, not one wait(): a stop signal's lost raise is noticed here
        try:
            return app.child.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            raise_if_interrupted()
