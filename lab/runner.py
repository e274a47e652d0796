"""One run: the app with a scenario's variant on, Locust load, sampling, profile, report.

Phases, in order: validate (nothing started yet) -> prepare (data, toggles)
-> start (app, sampler, profiler, load) -> watch -> clean up -> report.
Clean-up is its own phase and always runs, after success, failure, Ctrl-C or
SIGTERM alike: load stopped, profiler flushed, toggles reset, app stopped,
meta.json closed, and a (possibly partial) report written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import faults
import lab
from lab.app_server import AppConfig, AppServer
from lab.chaos import apply_toxics, clear_toxics
from lab.errors import LabError
from lab.load import LoadConfig, LocustRun, latest_stats
from lab.paths import database_url_for, lab_home, new_run_dir, parse_duration
from lab.processes import free_port
from lab.profilers import PROFILERS, make_profiler
from lab.sampler import Sampler
from loadtests import SHAPE_NAMES
from loadtests.workloads import available as available_workloads

__all__ = ["RunOptions", "RunResult", "available_services", "resolve", "run"]

log = logging.getLogger("lab.runner")


@dataclass
class RunOptions:
    slug: str
    fixed: bool = False
    # None: the scenario's own (its default_load; a deployment scenario's workers).
    duration_s: float | None = None
    users: int | None = None
    spawn_rate: float | None = None
    shape: str = "constant"
    workers: int | None = None
    profile: str = "none"
    out: Path = Path("runs")
    params: dict[str, Any] = field(default_factory=dict)
    seed_rows: int = 10_000
    workload: str | None = None  # None: the scenario's own

    @property
    def variant(self) -> faults.Variant:
        return "fixed" if self.fixed else "faulty"


@dataclass
class RunResult:
    run_dir: Path
    status: str  # completed | interrupted | failed
    error: str | None
    summary: dict[str, Any]


DEFAULT_USERS = 50
DEFAULT_DURATION = "30s"


def resolve(options: RunOptions, scenario: faults.Scenario, params: BaseModel) -> RunOptions:
    """Fill what the command line left open from the scenario: its default load,
    and for a deployment scenario the variant's worker count."""
    load = scenario.default_load
    workers = options.workers
    if workers is None:
        deployment = scenario.deployment(options.variant, params)
        workers = deployment.resolved_workers if deployment else 1
    duration = options.duration_s
    if duration is None:
        duration = parse_duration(str(load.get("duration", DEFAULT_DURATION)))
    users = options.users if options.users is not None else int(load.get("users", DEFAULT_USERS))
    return replace(options, users=users, duration_s=duration, workers=workers)


def _validate(options: RunOptions) -> tuple[faults.Scenario, BaseModel, set[str], RunOptions]:
    try:
        scenario = faults.get(options.slug)
    except faults.UnknownScenario as exc:
        raise LabError(f"{exc}. See `lab scenarios`.") from None
    try:
        params = faults.validate_params(scenario, options.params)
    except faults.InvalidParams as exc:
        raise LabError(str(exc)) from None
    options = resolve(options, scenario, params)
    assert options.duration_s is not None and options.users is not None
    assert options.workers is not None
    checks = [
        (options.duration_s > 0, f"--duration must be positive, got {options.duration_s}"),
        (options.users >= 1, f"--users must be at least 1, got {options.users}"),
        (options.workers >= 1, f"--workers must be at least 1, got {options.workers}"),
        (options.spawn_rate is None or options.spawn_rate > 0, "--spawn-rate must be positive"),
        (
            options.shape in SHAPE_NAMES,
            f"unknown shape '{options.shape}'; valid: {', '.join(SHAPE_NAMES)}",
        ),
        (
            options.profile in PROFILERS,
            f"unknown profiler '{options.profile}'; valid: {', '.join(PROFILERS)}",
        ),
        (
            (options.workload or scenario.workload) in available_workloads(),
            f"unknown workload '{options.workload or scenario.workload}'; "
            f"valid: {', '.join(available_workloads())}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise LabError(message)
    services = available_services()
    missing = [need for need in scenario.requires if need not in services]
    if missing:
        raise LabError(
            f"scenario '{scenario.slug}' needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not running; start the lab's services "
            f"with `make up` (or `lab up --only {' --only '.join(missing)}`)"
        )
    return scenario, params, services, options


def available_services() -> set[str]:
    """The lab's services that answer their health check right now (`lab up` starts them)."""
    from lab.services import all_services

    up = set()
    for service in all_services():
        try:
            if service.health()[0]:
                up.add(service.name)
        except Exception:  # a service that cannot even be probed is down
            continue
    return up


class _Network:
    """A run's Toxiproxy toxics and Prometheus registration: set up, then always undone."""

    def __init__(self, scenario: faults.Scenario, run_id: str, services: set[str]) -> None:
        self.scenario = scenario
        self.run_id = run_id
        self.services = services
        self.registered = False

    def app_env(self) -> dict[str, str]:
        """Addresses of the services that run; the app reaches each through its proxy."""
        from lab.topology import app_settings_env

        env = app_settings_env()
        wanted = {
            "DATABASE_URL": "postgres", "DATABASE_DIRECT_URL": "postgres",
            "REDIS_URL": "redis", "REDIS_DIRECT_URL": "redis",
            "UPSTREAM_URL": "upstream", "UPSTREAM_DIRECT_URL": "upstream",
        }  # fmt: skip
        out = {}
        for key, service in wanted.items():
            # Postgres only for scenarios that need it: the others keep the
            # embedded SQLite, so their numbers do not depend on `lab up`.
            needed = service != "postgres" or "postgres" in self.scenario.requires
            if service in self.services and "toxiproxy" in self.services and needed:
                out[key] = env[key]
        return out

    def apply_toxics(self) -> list[dict[str, Any]]:
        return apply_toxics(self.scenario) if self.scenario.toxics else []

    def remove_toxics(self) -> None:
        if self.scenario.toxics:
            clear_toxics()

    def register(self, port: int, variant: str) -> str | None:
        """Tell a running Prometheus to scrape this run's app; its URL, or None."""
        if "prometheus" not in self.services:
            return None
        from lab.services.prometheus import register_app_target
        from lab.topology import HOST, PROMETHEUS_PORT

        # Not "scenario": that is a label of the app's own lab_fault_active series.
        labels = {"run_id": self.run_id, "lab_scenario": self.scenario.slug, "lab_variant": variant}
        register_app_target(self.run_id, port, labels)
        self.registered = True
        return f"http://{HOST}:{PROMETHEUS_PORT}"

    def unregister(self) -> None:
        if self.registered:
            from lab.services.prometheus import unregister_app_target

            unregister_app_target(self.run_id)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "lab": lab.__version__}
    for dist in ("fastapi", "uvicorn", "gunicorn", "locust", "sqlalchemy", "py-spy", "memray"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill <lab>` is treated like Ctrl-C: the same clean-up runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """A second Ctrl-C must not cut the clean-up short and leave orphans behind."""
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def _prepare_database(rows: int, console: Console) -> str:
    from target_app.seed import seed

    url = database_url_for(rows)
    with Progress(
        TextColumn("seeding {task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}"),
        console=console, transient=True,
    ) as progress:  # fmt: skip
        tasks: dict[str, Any] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=total)
            progress.update(tasks[table], completed=done)

        seed(url, rows, progress=report)
    return url


def _prepare(scenario: faults.Scenario, variant: faults.Variant, database_url: str) -> None:
    try:
        scenario.prepare(variant, database_url)  # type: ignore[misc]
    except (KeyboardInterrupt, LabError):
        raise
    except Exception as exc:  # a database that refuses: one sentence, not a traceback
        raise LabError(
            f"preparing the database for {scenario.slug} ({variant}) failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
            "check that the services are up (`lab status`)"
        ) from exc


def _live_line(run_dir: Path, sampler: Sampler | None) -> str:
    stats = latest_stats(run_dir)
    rss = (sampler.latest.get("lab_app_rss_bytes") if sampler else None) or 0.0
    requests = stats.get("requests", 0.0)
    errors = stats.get("failures", 0.0) / requests * 100 if requests else 0.0
    return (
        f"RPS {stats.get('rps', 0):7.0f} | p95 {stats.get('p95_ms', 0):6.0f} ms | "
        f"RSS {rss / 2**20:7.1f} MB | errors {errors:4.1f}% | users {stats.get('users', 0):.0f}"
    )


def _watch(
    locust: LocustRun, app: AppServer, sampler: Sampler, duration: float, run_dir: Path,
    console: Console, label: str,
) -> None:  # fmt: skip
    columns = (
        SpinnerColumn(), TextColumn(f"[bold]{label}"), BarColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[live]}"),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("load", total=duration, live="starting Locust")
        start = time.monotonic()
        hard_stop = duration + 30.0
        while locust.running():
            elapsed = time.monotonic() - start
            if app.child is not None and not app.child.alive():
                raise LabError(
                    f"the app died during the load (exit code {app.child.process.poll()}); "
                    f"see {app.log_path}"
                )
            if elapsed > hard_stop:
                log.warning("Locust did not stop by itself after %.0f s; stopping it", elapsed)
                break
            progress.update(
                task, completed=min(elapsed, duration), live=_live_line(run_dir, sampler)
            )
            time.sleep(0.5)
        progress.update(task, completed=duration, live=_live_line(run_dir, sampler))
    code = locust.child.process.poll() if locust.child else None
    if code not in (None, 0):
        tail = locust.child.tail(8) if locust.child else ""
        raise LabError(f"Locust exited with code {code}; see {run_dir / 'locust.log'}:\n{tail}")


def _guarded(step: str, errors: list[str], action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as exc:  # clean-up goes on; the failure is recorded in meta.json
        log.exception("clean-up step %s failed", step)
        errors.append(f"{step}: {exc}")


def run(options: RunOptions, console: Console | None = None) -> RunResult:
    """Run one scenario variant under load. Raises LabError before anything starts."""
    from reports import build_report

    console = console or Console(stderr=True)
    scenario, params, services, options = _validate(options)
    assert options.duration_s is not None and options.users is not None
    assert options.workers is not None
    run_dir = new_run_dir(options.out, scenario.slug, options.variant)
    state_dir = lab_home() / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    store = faults.ToggleStore(state_dir / f"{run_dir.name}.json")
    load = LoadConfig(
        workload=options.workload or scenario.workload, shape=options.shape, users=options.users,
        spawn_rate=options.spawn_rate or float(options.users), duration_s=options.duration_s,
        seed_rows=options.seed_rows,
    )  # fmt: skip
    app_config = AppConfig(port=free_port(), workers=options.workers)
    meta: dict[str, Any] = {
        "run_id": run_dir.name,
        "scenario": scenario.slug, "title": scenario.title, "seeds": list(scenario.seeds),
        "kind": scenario.kind, "variant": options.variant,
        "params": params.model_dump(mode="json"), "symptom": scenario.symptom.as_dict(),
        "load": load.as_dict(),
        "app": {"server": app_config.server, "workers": app_config.workers,
                "host": app_config.host, "port": app_config.port,
                "state_file": str(store.path), "command": []},
        "profile": options.profile, "status": "running", "error": None,
        "started_at": _now(), "load_started_at": None, "load_ended_at": None,
        "ended_at": None,
        "versions": _versions(), "git_commit": _git_commit(),
        "machine": {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "platform": platform.platform()},
    }  # fmt: skip
    _write_json(run_dir / "meta.json", meta)
    console.print(
        f"[bold]{scenario.slug}[/] ({options.variant}) - {scenario.title}\n"
        f"load: {load.users} users, {load.shape}, {load.duration_s:g} s; "
        f"app: {app_config.server} x{app_config.workers}; profile: {options.profile}"
    )

    status, error = "failed", None
    app: AppServer | None = None
    sampler: Sampler | None = None
    locust: LocustRun | None = None
    profiler = None
    network = _Network(scenario, run_dir.name, services)
    cleanup_errors: list[str] = []
    with _sigterm_as_interrupt():
        try:
            service_env = network.app_env()
            database_url = service_env.get("DATABASE_URL") or _prepare_database(
                options.seed_rows, console
            )
            if scenario.prepare is not None:
                with console.status(f"preparing the database for the {options.variant} variant"):
                    _prepare(scenario, options.variant, database_url)
            store.reset()
            if options.variant == "faulty":
                store.enable(scenario.slug, params.model_dump(mode="json"))
            app_config.env = {
                "DATABASE_URL": database_url,
                "LAB_STATE_FILE": str(store.path),
                "LAB_ADMIN_ENABLED": "true",
                "LAB_ADMIN_TOKEN": secrets.token_urlsafe(24),
                "LAB_ENV": "development",
                "FAULTS": "",
                **{k: v for k, v in service_env.items() if k != "DATABASE_URL"},
            }
            multiproc = lab_home() / "prometheus" / run_dir.name if options.workers > 1 else None
            app = AppServer(app_config, run_dir / "app.log", multiproc)
            command, env = list(_app_command(app)), app.environment()
            profiler = make_profiler(
                options.profile, run_dir,
                leaks=scenario.profile_hint == "memory", workers=options.workers,
            )  # fmt: skip
            if profiler is not None:
                command, env = profiler.wrap(command, env)
            meta["app"]["command"] = command
            with console.status("starting the app"):
                app.start(command, env, timeout=90.0 if profiler else 60.0)
            sampler = Sampler(f"{app_config.base_url}/metrics", run_dir / "metrics.csv",
                              app_pid=lambda: app.pid if app else None)  # fmt: skip
            sampler.start()
            if profiler is not None:
                profiler.attach(app.pid)
            meta["toxics"] = network.apply_toxics()
            meta["prometheus"] = network.register(app_config.port, options.variant)
            _write_json(run_dir / "meta.json", meta)
            locust = LocustRun(load, app_config.base_url, run_dir)
            meta["load_started_at"] = _now()
            locust.start()
            assert locust.child is not None
            sampler.locust_pid = locust.child.pid
            _watch(locust, app, sampler, load.duration_s, run_dir, console,
                   f"{scenario.slug} ({options.variant})")  # fmt: skip
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            console.print("[yellow]interrupted: stopping everything and keeping what was measured")
        except LabError as exc:
            status, error = "failed", str(exc)
        finally:
            with _uninterruptible():
                if locust is not None:
                    _guarded("stop Locust", cleanup_errors, locust.stop)
                    meta["load_ended_at"] = _now()
                if sampler is not None:
                    _guarded("stop sampler", cleanup_errors, sampler.stop)
                if profiler is not None:
                    _guarded("stop profiler", cleanup_errors, profiler.detach)
                _guarded("reset toggles", cleanup_errors, store.reset)
                _guarded("remove toxics", cleanup_errors, network.remove_toxics)
                _guarded("unregister from Prometheus", cleanup_errors, network.unregister)
                if app is not None:
                    _guarded("stop app", cleanup_errors, app.stop)
                if meta.get("prometheus") and meta.get("load_started_at"):
                    with console.status("rendering the dashboard from Prometheus"):
                        _guarded("dashboard snapshot", cleanup_errors,
                                 lambda: _snapshot(run_dir, meta))  # fmt: skip
                if profiler is not None:
                    with console.status(f"writing the {options.profile} profile"):
                        _guarded("finalize profile", cleanup_errors, profiler.finalize)
                meta.update(status=status, error=error, ended_at=_now())
                if cleanup_errors:
                    meta["cleanup_errors"] = cleanup_errors
                _write_json(run_dir / "meta.json", meta)
                summary: dict[str, Any] = {}
                with console.status("building the report"):
                    _guarded("build report", cleanup_errors, lambda: build_report(run_dir))
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    summary = json.loads((run_dir / "summary.json").read_text())
                with contextlib.suppress(FileNotFoundError):
                    store.path.unlink()
    return RunResult(run_dir, status, error, summary)


def _snapshot(run_dir: Path, meta: dict[str, Any]) -> None:
    from lab.commands.dashboard import snapshot

    # The window is read from meta.json: write the end of the load first.
    _write_json(run_dir / "meta.json", {**meta, "ended_at": _now()})
    snapshot(run_dir, meta["prometheus"])


def _app_command(app: AppServer) -> list[str]:
    from lab.app_server import app_command

    return app_command(app.config)
