"""One run: the app with a scenario's variant on, Locust load, sampling, profile, report.

A run is a sequence of phases (`run()` reads as that list):

    validate  options and the scenario's needs; nothing exists yet, a mistake is a LabError
    prepare   the run dir and meta.json, the database, the fault toggles
    start     the app (under its profiler, if any), toxics, Prometheus, profiler, sampler
    load      Locust, watched until it ends
    stop      undo all that was acquired, in reverse; then what needs the app gone:
              the profile (memray writes its capture as the app exits), the dashboard
    report    meta.json closed, the report built: on a partial run too

Each phase pushes the undo of a resource onto the run's UndoStack the moment it
acquires it (lab/undo.py), so a failure in any phase, Ctrl-C or SIGTERM undoes
exactly what was done: Locust stopped before the app (it still writes its CSVs),
the profiler detached before the app stops, the toggles reset last. Stop and
report run with SIGINT and SIGTERM ignored, and each of their steps is guarded:
a step that fails is recorded in meta.json's `cleanup_errors`, and the others
still run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import faults
from lab.app_server import AppConfig, AppServer, app_command
from lab.chaos import apply_toxics, clear_toxics
from lab.errors import LabError
from lab.job_workers import JobWorkers
from lab.load import LoadConfig, LocustRun, latest_stats
from lab.paths import lab_home, new_run_dir, parse_duration
from lab.processes import free_port
from lab.profilers import PROFILERS, Profiler, make_profiler
from lab.proxy import ACCESS_LOG, PROBE_HEADERS, Nginx
from lab.rollout import Rollout
from lab.run_record import AppRecord, RunRecord, Status
from lab.sampler import Sampler
from lab.seeding import seed_database
from lab.undo import (
    UndoStack,
    guarded,
    raise_if_interrupted,
    signals_as_interrupt,
    uninterruptible,
)
from loadtests import SHAPE_NAMES
from loadtests.request_log import merge_parts  # no Locust import (gevent stays out of the lab)
from loadtests.workloads import available as available_workloads

__all__ = [
    "RunOptions",
    "RunResult",
    "available_services",
    "catalogue_rows",
    "resolve",
    "run",
]

log = logging.getLogger("lab.runner")

Scenario = faults.Scenario[Any, Any]


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
    seed_rows: int | None = None  # products seeded; None: the scenario's, else DEFAULT_ROWS
    workload: str | None = None  # None: the scenario's own
    rate: float | None = None  # requests/s on a schedule (open model); None: closed model
    load_processes: int = 1  # Locust processes; >1: a master and this many workers
    # A drill's run (lab/drill.py): its run dir's name, the app's /metrics and start
    # log and Prometheus' labels do not name the scenario (meta.json still does).
    blind: bool = False

    @property
    def variant(self) -> faults.Variant:
        return "fixed" if self.fixed else "faulty"


@dataclass
class RunResult:
    run_dir: Path
    status: Status  # completed | interrupted | failed
    error: str | None
    summary: dict[str, Any]


DEFAULT_USERS = 50
DEFAULT_DURATION = "30s"
DEFAULT_ROWS = 10_000

# An open run's users are not its load (the rate is) but its cap on requests in
# flight: a request waits for a free user. By Little's law the app holds
# rate x latency requests at once, so users for 1 s of requests send on time
# through any stall shorter than a second, and a longer stall is still measured
# from each request's intended time. At least 10, so that a slow schedule rides
# out a stall of several seconds; at most 1,000, since each user holds one
# connection, a file descriptor of the app's, whose soft limit is 1,024 on a
# stock Linux. --users sets it outright.
OPEN_IN_FLIGHT_S = 1.0
OPEN_USERS_MIN, OPEN_USERS_MAX = 10, 1_000
# Locust's documented best case for one process (FastHttpUser, small requests in
# a tight loop, docs "Increase performance"): about 16,000 requests/s. A schedule
# faster than that cannot be kept, and the latency from the intended time would
# then measure Locust's lag, not the app's.
MAX_RATE_PER_PROCESS = 16_000.0


def open_users(rate: float) -> int:
    """An open run's default users: about OPEN_IN_FLIGHT_S of requests in flight, bounded."""
    return min(max(math.ceil(rate * OPEN_IN_FLIGHT_S), OPEN_USERS_MIN), OPEN_USERS_MAX)


def usable_cores() -> int:
    """The cores this process may run on (its affinity; a container's cpuset shows here)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run(options: RunOptions, console: Console | None = None) -> RunResult:
    """Run one scenario variant under load. Raises LabError before anything starts."""
    console = console or Console(stderr=True)
    plan = _validate(options)
    state = _open(plan, console)
    status: Status = "failed"
    error: str | None = None
    summary: dict[str, Any] = {}
    with signals_as_interrupt():
        try:
            _prepare(state)
            _start(state)
            _load(state)
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            console.print("[yellow]interrupted: stopping everything and keeping what was measured")
        except LabError as exc:
            error = str(exc)
        except Exception as exc:  # a bug: recorded, undone, reported, then its traceback
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with uninterruptible():
                _stop(state)
                summary = _report(state, status, error)
    return RunResult(state.run_dir, status, error, summary)


# --------------------------------------------------------------------------- validate


def resolve_rate(options: RunOptions, scenario: Scenario) -> RunOptions:
    """The load model: --rate N is open, --rate 0 closed; unset, the scenario's default
    load says (a "rate" in it is open, e.g. performance-testing's stalling route)."""
    rate = options.rate
    if rate is None:
        default = scenario.default_load.get("rate")
        rate = float(default) if default is not None else None
    return replace(options, rate=rate or None)


def resolve(options: RunOptions, scenario: Scenario, params: BaseModel) -> RunOptions:
    """Fill what the command line left open from the scenario: its default load,
    and for a deployment scenario the variant's worker count."""
    options = resolve_rate(options, scenario)
    load = scenario.default_load
    workers = options.workers
    if workers is None:
        deployment = scenario.deployment(options.variant, params)
        workers = deployment.resolved_workers if deployment else scenario.app_workers
    duration = options.duration_s
    if duration is None:
        duration = parse_duration(str(load.get("duration", DEFAULT_DURATION)))
    users = options.users
    if users is None:
        # Open: the scenario's user count was sized for a closed load; the rate sizes it.
        users = open_users(options.rate) if options.rate else int(load.get("users", DEFAULT_USERS))
    rows = catalogue_rows(scenario, options.seed_rows)
    return replace(options, users=users, duration_s=duration, workers=workers, seed_rows=rows)


def catalogue_rows(scenario: Scenario | None, rows: int | None) -> int:
    """The products to seed: `rows` when given, else the scenario's catalogue (its
    default_load "rows": a symptom that needs a big enough shop), else DEFAULT_ROWS.
    `lab run` and `lab serve` both ask here, so a scenario is served as it is run."""
    if rows is not None:
        return rows
    return int(scenario.default_load.get("rows", DEFAULT_ROWS)) if scenario else DEFAULT_ROWS


@dataclass(frozen=True)
class _Plan:
    """A validated run: the options with nothing left open, and what it will run."""

    options: RunOptions
    scenario: Scenario
    params: BaseModel
    services: set[str]  # the lab's services that answer now
    duration_s: float
    users: int
    workers: int
    seed_rows: int


def _validate(options: RunOptions) -> _Plan:
    try:
        scenario = faults.get(options.slug)
    except faults.UnknownScenario as exc:
        raise LabError(f"{exc}. See `lab scenarios`.") from None
    try:
        params = faults.validate_params(scenario, options.params)
    except faults.InvalidParams as exc:
        raise LabError(str(exc)) from None
    # As resolved (--rate 0 is the closed model; unset, the scenario's), before
    # resolve() uses it: the rate sizes the default users.
    _validate_load_model(resolve_rate(options, scenario))
    options = resolve(options, scenario, params)
    assert options.duration_s is not None and options.users is not None
    assert options.workers is not None and options.seed_rows is not None
    checks = [
        (options.duration_s > 0, f"--duration must be positive, got {options.duration_s}"),
        (options.users >= 1, f"--users must be at least 1, got {options.users}"),
        (options.seed_rows >= 1, f"--rows must be at least 1, got {options.seed_rows}"),
        (options.workers >= 1, f"--workers must be at least 1, got {options.workers}"),
        (
            options.users >= options.load_processes,
            f"--users {options.users} is fewer than the {options.load_processes} Locust "
            "processes: each worker runs its share of the users (and of the rate), so a "
            "worker without a user would send nothing",
        ),
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
    if scenario.kind == "release":
        _validate_release(scenario, params, options.duration_s)
    services = available_services()
    missing = [need for need in scenario.requires if need not in services]
    if missing:
        raise LabError(
            f"scenario '{scenario.slug}' needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not running; start the lab's services "
            f"with `make up` (or `lab up --only {' --only '.join(missing)}`)"
        )
    return _Plan(options, scenario, params, services,
                 options.duration_s, options.users, options.workers,
                 options.seed_rows)  # fmt: skip


def _validate_release(scenario: Scenario, params: BaseModel, duration_s: float) -> None:
    """A release scenario needs nginx, and a deploy that starts while the load runs."""
    from lab.proxy import nginx_binary

    nginx_binary()  # LabError with the install command when it is missing
    for variant in ("faulty", "fixed"):
        procedure = scenario.procedure(variant, params)
        if procedure is not None and procedure.at_s >= duration_s:
            raise LabError(
                f"the deploy starts {procedure.at_s:g} s into the load, which lasts "
                f"{duration_s:g} s; give a longer --duration or an earlier --param at_s=N"
            )


def _validate_load_model(options: RunOptions) -> None:
    processes, cores, rate = options.load_processes, usable_cores(), options.rate
    if processes < 1:
        raise LabError(f"--load-processes must be at least 1, got {processes}")
    if processes > cores:
        raise LabError(
            f"--load-processes {processes} is more than the {cores} cores here: a Locust "
            "process uses one core at most (one Python interpreter), so more processes than "
            "cores only take turns on the same cores and take them from the app"
        )
    if rate is None:
        return
    if not (math.isfinite(rate) and rate > 0):
        raise LabError(
            f"--rate must be a positive number of requests per second (0: the closed "
            f"model), got {rate}"
        )
    most = MAX_RATE_PER_PROCESS * processes
    if rate > most:
        raise LabError(
            f"--rate {rate:g} is more than {processes} Locust process"
            f"{'es' if processes > 1 else ''} can send on schedule (about "
            f"{MAX_RATE_PER_PROCESS:,.0f} requests/s each at best, Locust's own figure); "
            f"lower it{' or add --load-processes' if processes < cores else ''}"
        )


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


# --------------------------------------------------------------------------- prepare


@dataclass
class _RunState:
    """What the phases share: the plan, the run dir, and each resource once acquired."""

    plan: _Plan
    console: Console
    run_dir: Path
    record: RunRecord
    store: faults.ToggleStore
    load: LoadConfig
    app_config: AppConfig
    undo: UndoStack = field(default_factory=UndoStack)
    app: AppServer | None = None
    profiler: Profiler | None = None
    sampler: Sampler | None = None
    locust: LocustRun | None = None
    job_workers: JobWorkers | None = None
    rollout: Rollout | None = None  # a release scenario's deploy (nginx in front)

    @property
    def label(self) -> str:
        return f"{self.plan.scenario.slug} ({self.plan.options.variant})"


def _open(plan: _Plan, console: Console) -> _RunState:
    """The run dir and its meta.json ("running"): from here on, a run always has a report."""
    options, scenario = plan.options, plan.scenario
    run_dir = new_run_dir(options.out, scenario.slug, options.variant, blind=options.blind)
    state_dir = lab_home() / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    store = faults.ToggleStore(state_dir / f"{run_dir.name}.json")
    load = LoadConfig(
        workload=options.workload or scenario.workload, shape=options.shape, users=plan.users,
        spawn_rate=options.spawn_rate or float(plan.users), duration_s=plan.duration_s,
        seed_rows=plan.seed_rows, rate=options.rate, load_processes=options.load_processes,
    )  # fmt: skip
    deployment = scenario.deployment(options.variant, plan.params)
    app_config = AppConfig(port=free_port(), workers=plan.workers)
    if deployment is not None:  # the variant's worker type; the count may be --workers'
        app_config.worker_class, app_config.threads = deployment.worker_class, deployment.threads
    record = RunRecord(
        path=run_dir / "meta.json", run_id=run_dir.name,
        scenario=scenario.slug, title=scenario.title, seeds=list(scenario.seeds),
        kind=scenario.kind, variant=options.variant,
        params=plan.params.model_dump(mode="json"), symptom=scenario.symptom.as_dict(),
        load=load.as_dict(),
        app=AppRecord(server=app_config.server, workers=app_config.workers,
                      host=app_config.host, port=app_config.port, state_file=str(store.path),
                      worker_class=app_config.worker_class, threads=app_config.threads),
        profile=options.profile,
    )  # fmt: skip
    record.write()
    console.print(
        f"[bold]{scenario.slug}[/] ({options.variant}) - {scenario.title}\n"
        f"load: {_load_text(load)}, {load.shape}, {load.duration_s:g} s; "
        f"app: {app_config.label}; profile: {options.profile}"
    )
    return _RunState(plan, console, run_dir, record, store, load, app_config)


def _load_text(load: LoadConfig) -> str:
    model = (
        f"open, {load.rate:g} req/s offered (at most {load.users} in flight)"
        if load.rate
        else f"closed, {load.users} users"
    )
    if load.load_processes > 1:
        model += f", Locust x{load.load_processes} processes"
    return model


def _prepare(state: _RunState) -> None:
    """The database the app will use, and the fault toggles it will read at start-up."""
    plan, options = state.plan, state.plan.options
    service_env = scenario_service_env(plan.scenario, plan.services)
    database_url = service_env.get("DATABASE_URL")
    if database_url is None:
        database_url, _counts = seed_database(plan.seed_rows, console=state.console)
    if plan.scenario.prepare is not None:
        with state.console.status(f"preparing the database for the {options.variant} variant"):
            _prepare_database(plan.scenario, options.variant, database_url)
    if plan.scenario.job_workers:
        _empty_job_queue(service_env)
    state.undo.push("reset toggles", state.store.discard)
    state.store.reset()
    if options.variant == "faulty" or options.params:
        # The fixed variant too when the run gave it params (`--fixed --param`):
        # without an entry the app would build it with its defaults.
        state.store.enable(plan.scenario.slug, plan.params.model_dump(mode="json"), options.variant)
    state.app_config.env = {
        "DATABASE_URL": database_url,
        "LAB_STATE_FILE": str(state.store.path),
        "LAB_ADMIN_ENABLED": "true",
        "LAB_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "LAB_ENV": "development",
        "FAULTS": "",
        "JOBS_ENABLED": "true" if plan.scenario.job_workers else "false",
        "LAB_BLIND": "true" if options.blind else "false",
        **plan.scenario.app_env,
        **{k: v for k, v in service_env.items() if k != "DATABASE_URL"},
    }


# Services a run hands the app only when its scenario requires them.
ONLY_IF_REQUIRED = frozenset({"postgres", "inventory"})


def scenario_service_env(scenario: Scenario, services: set[str]) -> dict[str, str]:
    """Addresses of the services that run; the app reaches each through its proxy."""
    from lab.topology import app_settings_env

    env = app_settings_env()
    wanted = {
        "DATABASE_URL": "postgres", "DATABASE_DIRECT_URL": "postgres",
        "REDIS_URL": "redis", "REDIS_DIRECT_URL": "redis",
        "UPSTREAM_URL": "upstream", "UPSTREAM_DIRECT_URL": "upstream",
        "INVENTORY_URL": "inventory", "INVENTORY_DIRECT_URL": "inventory",
    }  # fmt: skip
    out = {}
    for key, service in wanted.items():
        # Postgres only for scenarios that need it: the others keep the
        # embedded SQLite, so their numbers do not depend on `lab up`. The
        # inventory likewise: an app that knows it relays its outbox and counts
        # placed orders at every scrape, queries no other scenario should pay.
        needed = service not in ONLY_IF_REQUIRED or service in scenario.requires
        if service in services and "toxiproxy" in services and needed:
            out[key] = env[key]
    return out


def _empty_job_queue(service_env: dict[str, str]) -> None:
    """A run's queue starts empty: an interrupted or killed run leaves messages (and a
    killed worker's unacknowledged ones) that would run in the next run's workers."""
    from target_app.jobs import job_queue  # Dramatiq: only for a run that has jobs

    url = service_env.get("REDIS_DIRECT_URL") or service_env.get("REDIS_URL")
    if url is None:  # _validate refused a scenario with job workers and no Redis
        return
    try:
        job_queue(url).broker.flush_all()
    except Exception as exc:
        raise LabError(
            f"could not empty the job queue on {url}: {exc}; check Redis with `lab status`"
        ) from exc


def _prepare_database(scenario: Scenario, variant: faults.Variant, database_url: str) -> None:
    assert scenario.prepare is not None
    try:
        scenario.prepare(variant, database_url)
    except (KeyboardInterrupt, LabError):
        raise
    except Exception as exc:  # a database that refuses: one sentence, not a traceback
        raise LabError(
            f"preparing the database for {scenario.slug} ({variant}) failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
            "check that the services are up (`lab status`)"
        ) from exc


# --------------------------------------------------------------------------- start


def _start(state: _RunState) -> None:
    """The app, ready; then its network conditions, its scrape, its profiler, the sampler."""
    plan, options, undo = state.plan, state.plan.options, state.undo
    # Job workers write their metrics next to the app's, which /metrics then
    # aggregates (prometheus-client's multiprocess mode), as gunicorn's workers do.
    shared_metrics = state.app_config.server == "gunicorn" or plan.scenario.job_workers > 0
    multiproc = lab_home() / "prometheus" / state.run_dir.name if shared_metrics else None
    app = state.app = AppServer(state.app_config, state.run_dir / "app.log", multiproc)
    command, env = app_command(state.app_config), app.environment()
    worker_env = dict(env)  # the app's, before a profiler wraps it
    profiler = state.profiler = make_profiler(
        options.profile, state.run_dir,
        leaks=plan.scenario.profile_hint == "memory", workers=plan.workers,
    )  # fmt: skip
    if profiler is not None:
        command, env = profiler.wrap(command, env)  # memray must start the app itself
    state.record.app_command(command)
    undo.push("stop app", app.stop)  # before start(): an app that never got ready is stopped too
    with state.console.status("starting the app"):
        app.start(command, env, timeout=90.0 if profiler else 60.0)
    state.record.app_started(app.pid)
    if plan.scenario.job_workers:
        workers = state.job_workers = JobWorkers(
            plan.scenario.job_workers,
            worker_env,
            state.run_dir / "job-workers.log",
            threads=plan.scenario.job_threads,
        )
        undo.push("stop job workers", workers.stop)  # before the app's: they finish first
        with state.console.status(f"starting {workers.count} job worker(s)"):
            workers.start()

    if plan.scenario.toxics:
        undo.push("remove toxics", clear_toxics)
        state.record.toxics_applied(apply_toxics(plan.scenario))
    if "prometheus" in plan.services:
        from lab.services.prometheus import register_app_target, unregister_app_target
        from lab.topology import HOST, PROMETHEUS_PORT

        undo.push("unregister from Prometheus", lambda: unregister_app_target(state.run_dir.name))
        # Not "scenario": that is a label of the app's own lab_fault_active series.
        labels = {"run_id": state.run_dir.name, "lab_scenario": plan.scenario.slug,
                  "lab_variant": options.variant}  # fmt: skip
        if options.blind:  # a drill: the dashboards show the run, not its answer
            labels = {"run_id": state.run_dir.name}
        register_app_target(state.run_dir.name, state.app_config.port, labels)
        state.record.scraped_by(f"http://{HOST}:{PROMETHEUS_PORT}")

    if profiler is not None:
        undo.push("stop profiler", profiler.detach)  # py-spy flushes its file on it
        profiler.attach(app.pid)
    if plan.scenario.kind == "release":
        _start_rollout(state, app, scenario_service_env(plan.scenario, plan.services))
    # Last before the load: its clock (t in metrics.csv) counts from about the load's start.
    # Behind a release's proxy, the sampler follows the live release (marked as no traffic).
    rollout = state.rollout
    metrics = f"{rollout.proxy.url if rollout else state.app_config.base_url}/metrics"
    sampler = state.sampler = Sampler(
        metrics, state.run_dir / "metrics.csv",
        rollout.live_pid if rollout else lambda: app.pid,
        headers=PROBE_HEADERS if rollout else None,
    )  # fmt: skip
    undo.push("stop sampler", sampler.stop)
    sampler.start()


def _start_rollout(state: _RunState, app: AppServer, service_env: dict[str, str]) -> None:
    """nginx in front of the app, and the deploy the variant's procedure will run."""
    plan = state.plan
    procedure = plan.scenario.procedure(plan.options.variant, plan.params)
    assert procedure is not None  # kind "release"
    direct = service_env.get("DATABASE_DIRECT_URL") or state.app_config.env["DATABASE_URL"]
    proxy = Nginx(lab_home() / "proxy" / state.run_dir.name, state.run_dir / ACCESS_LOG,
                  state.run_dir / "proxy-error.log")  # fmt: skip
    state.undo.push("stop nginx", proxy.stop)
    with state.console.status("starting nginx in front of the app"):
        proxy.start(state.app_config.port)
    rollout = state.rollout = Rollout(procedure, app, proxy, state.run_dir, direct)
    # After Locust's stop (the stack runs in reverse): the procedure ends, the
    # releases it started stop, and rollout.json is written, on any way out.
    state.undo.push("end the deploy", rollout.close)


# --------------------------------------------------------------------------- load


def _merge_logs(run_dir: Path) -> None:
    """The per-process logs of a distributed run, each merged into its one file."""
    merge_parts(run_dir)  # requests.csv: its header even if every worker died empty
    for side_log in ("checkouts.csv", "webhooks.csv"):  # a workload's own record, if any
        merge_parts(run_dir, side_log, columns=None)


def _load(state: _RunState) -> None:
    """Locust until the load shape ends it; the app dying meanwhile fails the run."""
    assert state.app is not None and state.sampler is not None
    # A release scenario's load goes through its proxy, as production traffic does.
    target = state.rollout.proxy.url if state.rollout else state.app_config.base_url
    locust = state.locust = LocustRun(state.load, target, state.run_dir)
    # The lab's load is the app's operator too: a workload that follows the live
    # log (log_tail) sends this run's admin token, which changes with every run.
    locust.env["LAB_ADMIN_TOKEN"] = state.app_config.env["LAB_ADMIN_TOKEN"]
    if state.load.load_processes > 1:
        # Undone after Locust stopped (the stack runs in reverse): its workers have
        # written their parts by then, on an interrupted run too.
        state.undo.push("merge request logs", lambda: _merge_logs(state.run_dir))
    state.undo.push("stop Locust", lambda: _stop_locust(locust, state.record))
    state.record.load_started()
    locust.start()
    assert locust.child is not None
    state.sampler.locust_pid = locust.child.pid
    _watch(state, locust, state.app, state.sampler)
    gauges = list(state.plan.scenario.drains)
    if state.job_workers is not None:
        gauges += ["background_jobs{state=queued}", "background_jobs{state=running}"]
    if gauges:
        _drain(state, gauges, state.job_workers, state.sampler)


# The jobs a run queued are part of its evidence (done exactly once?), so the run
# waits for them after the load, as long as a backlog of this size can take.
DRAIN_S = 90.0


def _drain(
    state: _RunState, gauges: list[str], workers: JobWorkers | None, sampler: Sampler
) -> None:
    """After the load, until every gauge of `gauges` (as sampled after the load ended)
    is 0, or DRAIN_S; a job worker that dies meanwhile is restarted as during the load."""
    ended = time.time()
    deadline = time.monotonic() + DRAIN_S
    with state.console.status("waiting for the work the load left to finish") as status:
        while time.monotonic() < deadline:
            raise_if_interrupted()
            if workers is not None:
                workers.supervise()
            latest = sampler.latest
            if latest.get("ts", 0.0) > ended and all(g in latest for g in gauges):
                pending = sum(latest[g] for g in gauges)
                if pending == 0:
                    return
                status.update(f"waiting for the {pending:.0f} item(s) the load left "
                              f"({', '.join(gauges)}) to finish")  # fmt: skip
            time.sleep(0.5)
    log.warning("%s were not all 0 %.0f s after the load", ", ".join(gauges), DRAIN_S)


def _stop_locust(locust: LocustRun, record: RunRecord) -> None:
    try:
        locust.stop()  # SIGINT: Locust writes its CSVs and HTML report first
    finally:
        record.load_ended()  # the load window, whatever happened to Locust


def _live_line(run_dir: Path, sampler: Sampler | None, rate: float | None = None) -> str:
    stats = latest_stats(run_dir)
    rss = (sampler.latest.get("lab_app_rss_bytes") if sampler else None) or 0.0
    requests = stats.get("requests", 0.0)
    errors = stats.get("failures", 0.0) / requests * 100 if requests else 0.0
    # Open: what was sent against what was offered; falling short is the story.
    offered = f" of {rate:g} offered" if rate else ""
    return (
        f"RPS {stats.get('rps', 0):7.0f}{offered} | p95 {stats.get('p95_ms', 0):6.0f} ms | "
        f"RSS {rss / 2**20:7.1f} MB | errors {errors:4.1f}% | users {stats.get('users', 0):.0f}"
    )


def _watch(state: _RunState, locust: LocustRun, app: AppServer, sampler: Sampler) -> None:
    duration, run_dir, rate = state.load.duration_s, state.run_dir, state.load.rate
    columns = (
        SpinnerColumn(), TextColumn(f"[bold]{state.label}"), BarColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[live]}"),
    )  # fmt: skip
    with Progress(*columns, console=state.console, transient=False) as progress:
        task = progress.add_task("load", total=duration, live="starting Locust")
        start = time.monotonic()
        hard_stop = duration + 30.0
        while locust.running():
            raise_if_interrupted()
            elapsed = time.monotonic() - start
            if state.rollout is not None:
                state.rollout.tick(elapsed)  # the deploy, when due; its processes
                if not state.rollout.live_alive():
                    raise LabError(f"the live release died during the load; see {run_dir}/app*.log")
            elif app.child is not None and not app.child.alive():
                raise LabError(
                    f"the app died during the load (exit code {app.child.process.poll()}); "
                    f"see {app.log_path}"
                )
            if state.job_workers is not None and state.job_workers.supervise():
                log.warning("a job worker exited during the load and was restarted; see %s",
                            state.job_workers.log_path)  # fmt: skip
            if elapsed > hard_stop:
                log.warning("Locust did not stop by itself after %.0f s; stopping it", elapsed)
                break
            progress.update(
                task, completed=min(elapsed, duration), live=_live_line(run_dir, sampler, rate)
            )
            time.sleep(0.5)
        progress.update(task, completed=duration, live=_live_line(run_dir, sampler, rate))
    raise_if_interrupted()
    code = locust.child.process.poll() if locust.child else None
    if code not in (None, 0):
        tail = locust.child.tail(8) if locust.child else ""
        raise LabError(f"Locust exited with code {code}; see {run_dir / 'locust.log'}:\n{tail}")


# --------------------------------------------------------------------------- stop


def _stop(state: _RunState) -> None:
    """Undo everything acquired, in reverse; then the evidence that needs the app gone."""
    state.undo.close()
    errors = list(state.undo.errors)
    audited = state.plan.scenario.audit is not None or state.rollout is not None
    if audited and state.record.load_started_at:
        # The app stopped: what its databases hold now is what the run left.
        with state.console.status("counting in the services' databases"):
            guarded("audit", errors, lambda: _audit(state))
    if state.record.prometheus and state.record.load_started_at:
        from lab.dashboard import snapshot

        prometheus = state.record.prometheus
        with state.console.status("rendering the dashboard from Prometheus"):
            # The load window comes from meta.json, closed by the Locust undo above.
            guarded("dashboard snapshot", errors, lambda: snapshot(state.run_dir, prometheus))
    if state.profiler is not None:
        with state.console.status(f"writing the {state.plan.options.profile} profile"):
            guarded("finalize profile", errors, state.profiler.finalize)
    state.record.cleanup_failed(errors)


def _audit(state: _RunState) -> None:
    from reports.formats import AuditFile

    scenario = state.plan.scenario
    counts: dict[str, int | float] = {}
    if state.rollout is not None:  # nginx's record of the requests, by rollout phase
        counts |= state.rollout.counts()
    if scenario.audit is not None:
        counts |= scenario.audit(scenario_service_env(scenario, state.plan.services))
    AuditFile(state.run_dir).write(scenario.slug, counts)


# --------------------------------------------------------------------------- report


def _report(state: _RunState, status: Status, error: str | None) -> dict[str, Any]:
    """Close meta.json, build the report from the run dir alone; the summary, or {}."""
    from reports import build_report

    state.record.finish(status, error)
    errors: list[str] = []
    with state.console.status("building the report"):
        guarded("build report", errors, lambda: build_report(state.run_dir))
    state.record.cleanup_failed(errors)
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        summary: dict[str, Any] = json.loads((state.run_dir / "summary.json").read_text())
        return summary
    return {}
