"""Every dashboard panel and every rule, evaluated by the lab's own Prometheus after real load.

The stack is the lab's: `lab up --only postgres --only redis --only upstream
--only prometheus` (the `lab_services` fixture: Toxiproxy in front of every
link, Postgres seeded with 1,000,000 products, the fake payment provider, Prometheus with
the lab's rule files and its file_sd directory). The app runs under gunicorn (2
workers, multiprocess metrics) with the settings a `lab run` gives it, reaching
Postgres, Redis and the provider through their Toxiproxy links, and is
registered with Prometheus exactly as `lab run` registers its app
(`register_app_target`). Locust drives the `mixed` workload (every route) with
the memory-leak fault switched on half-way; then the app is stopped, as at the
end of a run, which closes its pooled connections (Toxiproxy counts a
connection's bytes when it closes).

Each panel expression is then sent to /api/v1/query_range over the run's
window, as Grafana would send it (template variables set to All), and must
return data, except the few panels listed below with their reason. The last
tests run a real `lab run` and check that it leaves the dashboard snapshot, and
that its target labels keep the app's own labels.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lab.dashboard import (
    DASHBOARDS_DIR,
    RULES_DIR,
    annotation_queries,
    panel_queries,
    rule_queries,
    snapshot,
    substitute,
    template_defaults,
)
from lab.errors import LabError
from lab.job_workers import JobWorkers
from lab.load import LoadConfig, LocustRun
from lab.processes import free_port
from lab.services.prometheus import register_app_target, unregister_app_target
from tests.conftest import REPO, SERVICES_SEED_ROWS, RunningApp, need, start_app

pytestmark = [pytest.mark.integration, pytest.mark.services]

SERVICES = ("postgres", "redis", "upstream", "prometheus")
SEED_ROWS = 20_000  # the ids the load touches (LAB_SEED_ROWS), within what is seeded
LOAD_SECONDS = 20.0
SCRAPE_S = 1.0  # the lab's Prometheus scrapes everything every second
# Grafana over a run of about a minute: $__interval is the datasource's 1 s
# (so $__rate_interval is 4 s) and the step is the interval.
STEP_S = 1.0
# After the load the app serves nothing for a few scrapes, then stops; the
# window then runs on until Prometheus has scraped what the stop released.
IDLE_BEFORE_STOP_S = 3.0
AFTER_STOP_S = 5.0
TARGET = "dashboards-test"

# Panels whose metrics the app cannot produce yet: the code that feeds them
# does not exist in target_app/. Their queries must still be valid PromQL and
# must return nothing (the list is kept exact: a panel that starts producing
# data fails the test until it is taken off).
NOT_YET_PRODUCED: set[tuple[str, str]] = set()
# Panels fed by exporters that only docker compose runs (postgres-exporter,
# redis-exporter): `lab up` has no native exporter. Same rule.
NOT_IN_THIS_TEST = {
    ("Lab database", "Postgres connections by state"),  # postgres-exporter
    ("Lab database", "Postgres locks by mode"),  # postgres-exporter
    ("Lab database", "Postgres transactions per second"),  # postgres-exporter
    ("Lab upstream dependencies", "Redis commands per second"),  # redis-exporter
    ("Lab upstream dependencies", "Redis connected clients"),  # redis-exporter
}
# Panels of Toxiproxy's byte counters, one per link: the app's traffic must
# show on each link as bytes, not merely as a series at 0.
LINK_PANELS = {
    ("Lab database", "Postgres link traffic (Toxiproxy)"): "postgres",
    ("Lab upstream dependencies", "Redis link traffic (Toxiproxy)"): "redis",
    ("Lab upstream dependencies", "Upstream link traffic (Toxiproxy)"): "upstream",
}


@dataclass
class Stack:
    prometheus: str
    app: RunningApp
    load_started: float
    load_ended: float
    window_end: float  # the app stopped, and Prometheus scraped what that released
    work: Path

    @property
    def instance(self) -> str:
        """The app's `instance` label: recording rules keep job and instance only."""
        return f"127.0.0.1:{self.app.server.config.port}"


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


_TOPOLOGY = """
import json
from lab.topology import PROMETHEUS_PORT, app_settings_env
print(json.dumps({**app_settings_env(), "PROMETHEUS_PORT": str(PROMETHEUS_PORT)}))
"""


def _topology(env: dict[str, str]) -> dict[str, str]:
    """lab/topology.py as a child with the services' LAB_PORT_OFFSET sees it (read at import)."""
    done = subprocess.run(
        [sys.executable, "-c", _TOPOLOGY], env={**os.environ, **env}, cwd=REPO,
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_links(settings: dict[str, str]) -> None:
    """One round trip through the postgres and redis links, closed at once.

    Toxiproxy creates a link's byte counters when the first connection through
    it closes, and rate() cannot count a counter's first sample: without an
    earlier connection, the bytes of the app's pooled connections (counted when
    the app stops) would be the counters' first samples and show as 0. Any
    earlier use of the link does; in a lab that has been up for a while, the
    previous runs have.
    """
    engine = create_engine(settings["DATABASE_URL"], poolclass=NullPool)
    try:
        with engine.connect() as conn:
            seeded = conn.execute(text("select count(*) from products")).scalar()
            assert seeded == SERVICES_SEED_ROWS
    finally:
        engine.dispose()
    client = redis.Redis.from_url(settings["REDIS_URL"])
    try:
        assert client.ping()
    finally:
        client.close()
        client.connection_pool.disconnect()


def _query(prom: str, expr: str, at: float) -> list[dict[str, Any]]:
    response = httpx.post(f"{prom}/api/v1/query", data={"query": expr, "time": at}, timeout=10)
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body.get('error')}"
    return list(body["data"]["result"])


@pytest.fixture(scope="module")
def services(lab_services: Callable[..., dict[str, str]]) -> dict[str, str]:
    return dict(lab_services(*SERVICES))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, services: dict[str, str]) -> Iterator[Stack]:
    settings = _topology(services)
    prom = f"http://127.0.0.1:{settings['PROMETHEUS_PORT']}"
    _wait(lambda: httpx.get(f"{prom}/-/ready").status_code == 200, 30, "Prometheus")
    _check_links(settings)

    work = tmp_path_factory.mktemp("dashboards")
    # What `lab run` gives an app that needs Postgres (lab/runner.py: _Network.app_env).
    app_env = {k: v for k, v in settings.items() if k.endswith("_URL") and k != "TOXIPROXY_URL"}
    # With a job worker, as `lab run` gives a scenario that has one: the jobs panel.
    app = start_app(work, app_env.pop("DATABASE_URL"), workers=2, JOBS_ENABLED="true",
                    SCHEDULER_ENABLED="true", SCHEDULER_INTERVAL_S="2", **app_env)  # fmt: skip
    workers = _job_worker(app, work)
    try:
        with _registered(services["LAB_HOME"], app.server.config.port):

            def scraped() -> bool:
                up = _query(prom, f'up{{job="lab-app", target="{TARGET}"}}', time.time())
                others = _query(prom, 'up{job=~"toxiproxy|upstream|prometheus"}', time.time())
                return (
                    [float(s["value"][1]) for s in up] == [1.0]
                    and len(others) == 3
                    and all(float(s["value"][1]) == 1.0 for s in others)
                )

            _wait(
                scraped, 60, "Prometheus to scrape the app (file_sd), Toxiproxy, upstream, itself"
            )
            load_started, load_ended = _load(app, work / "load")
            time.sleep(IDLE_BEFORE_STOP_S)
        workers.stop()
        # As at the end of a run: Prometheus lets go of the app, then the app stops,
        # which closes its pools (Toxiproxy counts their bytes now).
        app.server.stop()
        time.sleep(AFTER_STOP_S)
        yield Stack(prom, app, load_started, load_ended, time.time(), work)
    finally:
        workers.stop()  # idempotent
        app.server.stop()


@contextlib.contextmanager
def _registered(lab_home: str, port: int) -> Iterator[None]:
    """The app as a file_sd target of the services' Prometheus, as `lab run` registers it."""
    # register_app_target writes under lab_home(), which reads LAB_HOME at call time.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_HOME", lab_home)
        # Not `scenario`, as lab/runner.py adds: it would shadow lab_fault_active's
        # own label (see test_lab_run_keeps_the_apps_own_scenario_label).
        register_app_target(TARGET, port, {"run_id": TARGET})
    try:
        yield
    finally:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LAB_HOME", lab_home)
            unregister_app_target(TARGET)


def _job_worker(app: RunningApp, work: Path) -> JobWorkers:
    """One Dramatiq worker with the app's environment and metrics directory (as the
    runner starts it: lab/runner.py)."""
    server = app.server
    assert server.multiproc_dir is not None
    env = {**os.environ, **server.config.env,
           "PROMETHEUS_MULTIPROC_DIR": str(server.multiproc_dir)}  # fmt: skip
    workers = JobWorkers(1, env, work / "job-workers.log")
    workers.start()
    return workers


def _run_jobs(app: RunningApp, count: int) -> None:
    """Jobs through the job API, waited for: background_jobs{state} has counted them."""
    ids = []
    for _ in range(count):
        response = httpx.post(f"{app.url}/etl/jobs", params={"limit": 1_000}, timeout=10)
        assert response.status_code == 202, response.text
        ids.append(response.json()["job_id"])

    def done() -> bool:
        states = [httpx.get(f"{app.url}/etl/jobs/{i}", timeout=5).json()["status"] for i in ids]
        return all(state == "done" for state in states)

    _wait(done, 60, "the jobs to be done")


def _load(app: RunningApp, run_dir: Path) -> tuple[float, float]:
    """The mixed workload, memory-leak on half-way, two jobs run by the job worker;
    (start, end) of the load."""
    run_dir.mkdir()
    load = LocustRun(
        LoadConfig(workload="mixed", users=10, spawn_rate=10, duration_s=LOAD_SECONDS,
                   seed_rows=SEED_ROWS),
        host=app.url, run_dir=run_dir,
    )  # fmt: skip
    started = time.time()
    load.start()
    try:
        _run_jobs(app, 2)
        time.sleep(LOAD_SECONDS / 2)
        # A fault on, so that the fault panels and annotations have something to show.
        toggle = httpx.put(f"{app.url}/_lab/faults/memory-leak", headers=app.auth)
        assert toggle.status_code == 200, toggle.text
        _wait(lambda: not load.running(), LOAD_SECONDS + 40, "Locust to finish")
    finally:
        load.stop()
    ended = time.time()
    stats = run_dir / "locust_stats.csv"
    assert stats.is_file(), (run_dir / "locust.log").read_text()
    # Every route of the mixed workload answered, without a failure.
    rows = [line.split(",") for line in stats.read_text().splitlines()[1:]]
    by_name = {row[1]: (int(row[2]), int(row[3])) for row in rows if row[0]}
    assert len(by_name) == 8 and all(n > 0 and f == 0 for n, f in by_name.values()), by_name
    # The request log holds every request Locust counted, under the same names
    # (it may hold a few more: requests that ended after Locust's last
    # snapshot), and none twice: a hook installed twice would copy each row.
    with (run_dir / "requests.csv").open() as handle:
        rows = [tuple(row.values()) for row in csv.DictReader(handle)]
    assert len(set(rows)) == len(rows), "requests.csv holds duplicate rows"
    logged = Counter(name.split(" ", 1)[1] for _, name, *_ in rows)
    assert logged.keys() == by_name.keys(), (logged, by_name)
    assert all(logged[name] >= n for name, (n, _) in by_name.items()), (logged, by_name)
    return started, ended


def _range(prom: str, expr: str, start: float, end: float) -> tuple[str | None, list[float]]:
    """Grafana's query for a time series panel: every finite value of every series."""
    response = httpx.post(
        f"{prom}/api/v1/query_range",
        data={"query": expr, "start": start, "end": end, "step": STEP_S},
        timeout=20,
    )
    body = response.json()
    if body.get("status") != "success":
        return str(body.get("error")), []
    values = [float(v) for item in body["data"]["result"] for _, v in item["values"]]
    return None, [v for v in values if math.isfinite(v)]


def _instant(prom: str, expr: str, at: float) -> tuple[str | None, list[dict[str, Any]]]:
    response = httpx.post(f"{prom}/api/v1/query", data={"query": expr, "time": at}, timeout=10)
    body = response.json()
    if body.get("status") != "success":
        return str(body.get("error")), []
    result = body["data"]["result"]
    return None, result if isinstance(result, list) else [{"value": result}]


def _has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(item["value"][1])) for item in result)


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not on PATH (make services)")
    assert promtool is not None
    for path in sorted(RULES_DIR.glob("*.yml")):
        done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_panel_and_rule_query_runs_and_panels_have_data(stack: Stack) -> None:
    start, end = stack.load_started, stack.window_end
    failures: list[str] = []
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    dashboards = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert dashboards
    for path in dashboards:
        variables = template_defaults(path)
        for query in [*panel_queries(path), *annotation_queries(path)]:
            expr = substitute(query.expr, interval_s=STEP_S, scrape_interval_s=SCRAPE_S,
                              range_s=end - start, variables=variables)  # fmt: skip
            error, found = _range(stack.prometheus, expr, start, end)
            if error:
                failures.append(f"{query.dashboard} / {query.panel}: {error}\n    {expr}")
            values[(query.dashboard, query.panel)] += found
    for rule in rule_queries(RULES_DIR):
        error, _ = _instant(stack.prometheus, rule.expr, stack.load_ended)
        if error:
            failures.append(f"rule {rule.group} / {rule.name}: {error}")
    assert not failures, "queries Prometheus refused:\n" + "\n".join(failures)

    exempt = NOT_YET_PRODUCED | NOT_IN_THIS_TEST
    panels = set(values)
    assert exempt <= panels, f"listed panels that do not exist: {sorted(exempt - panels)}"
    assert set(LINK_PANELS) <= panels, sorted(set(LINK_PANELS) - panels)
    empty = sorted(key for key in panels if not values[key] and key not in exempt)
    assert not empty, f"panels without data over {LOAD_SECONDS:.0f} s of load: {empty}"
    now_producing = sorted(key for key in exempt if values[key])
    assert not now_producing, f"these produce data now, take them off the lists: {now_producing}"
    # The app's traffic crossed every link, as bytes.
    silent = [link for key, link in LINK_PANELS.items() if max(values[key]) <= 0]
    assert not silent, f"no bytes through the Toxiproxy link(s) {silent}"


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    groups = httpx.get(f"{stack.prometheus}/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(rule_queries(RULES_DIR))
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] == "err"]
    assert not broken, broken
    # Recording rules the dashboards read have series from the load.
    for name in ("lab:http_request_duration_seconds:p99_1m", "lab:db_time_share:ratio_rate1m",
                 "lab:worker_resident_memory_bytes:deriv5m", "lab:db_pool_saturation:ratio",
                 "lab:http_5xx_ratio:rate1m", "lab:upstream_error_ratio:rate1m"):  # fmt: skip
        selector = f'{name}{{instance="{stack.instance}"}}'
        error, result = _instant(stack.prometheus, selector, stack.load_ended - 1)
        assert error is None and _has_finite_value(result), name
    # No call to the provider failed (no toxic): the error ratio is a real 0.
    selector = f'lab:upstream_error_ratio:rate1m{{instance="{stack.instance}"}}'
    _, ratio = _instant(stack.prometheus, selector, stack.load_ended - 1)
    assert [float(item["value"][1]) for item in ratio] == [0.0], ratio
    # The memory-leak fault was switched on half-way: its info alert fired.
    alert = 'ALERTS{alertname="LabFaultActive", scenario="memory-leak", alertstate="firing"}'
    error, result = _instant(stack.prometheus, alert, stack.load_ended - 1)
    assert error is None and _has_finite_value(result), error


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def test_snapshot_draws_every_overview_panel_over_the_load_window(stack: Stack) -> None:
    run_dir = stack.work / "runs" / "20261125-000000-snapshot-faulty"
    run_dir.mkdir(parents=True)
    meta = {
        "run_id": run_dir.name, "scenario": "memory-leak", "variant": "faulty",
        "status": "completed", "started_at": _iso(stack.load_started - 2),
        "load_started_at": _iso(stack.load_started), "load_ended_at": _iso(stack.load_ended),
        "ended_at": _iso(stack.load_ended + 2),
    }  # fmt: skip
    (run_dir / "meta.json").write_text(json.dumps(meta))
    png = snapshot(run_dir, stack.prometheus)
    assert png == run_dir / "plots" / "dashboard.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 50_000  # a grid of charts, not an empty canvas

    other = snapshot(run_dir, stack.prometheus, out=stack.work / "elsewhere" / "d.png")
    assert other.is_file()


def test_snapshot_says_how_to_start_prometheus_when_it_is_unreachable(tmp_path: Path) -> None:
    window = {"load_started_at": "2026-11-25T08:00:00+00:00",
              "load_ended_at": "2026-11-25T08:00:30+00:00"}  # fmt: skip
    (tmp_path / "meta.json").write_text(json.dumps(window))
    with pytest.raises(LabError, match=r"not reachable.*make up"):
        snapshot(tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(LabError, match="not a run dir"):
        snapshot(tmp_path / "missing", "http://127.0.0.1:1")


@dataclass
class LabRun:
    run_dir: Path
    meta: dict[str, Any]
    prometheus: str  # the services' Prometheus
    targets: Path  # its file_sd directory


@pytest.fixture(scope="module")
def memory_leak_run(tmp_path_factory: pytest.TempPathFactory, services: dict[str, str]) -> LabRun:
    """A real `lab run` while the services (Prometheus among them) are up."""
    out = tmp_path_factory.mktemp("lab-run")
    done = subprocess.run(
        [sys.executable, "-m", "lab.cli", "run", "memory-leak", "--duration", "12s",
         "--users", "10", "--rows", "2000", "--out", str(out)],
        env={**os.environ, **services}, cwd=REPO, capture_output=True, text=True,
        timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.parent == out, done.stdout
    meta = json.loads((run_dir / "meta.json").read_text())
    prom = f"http://127.0.0.1:{_topology(services)['PROMETHEUS_PORT']}"
    return LabRun(run_dir, meta, prom, Path(services["LAB_HOME"]) / "prometheus" / "targets")


def test_lab_run_with_prometheus_up_leaves_the_dashboard_snapshot(memory_leak_run: LabRun) -> None:
    run_dir, meta = memory_leak_run.run_dir, memory_leak_run.meta
    assert meta["status"] == "completed", meta.get("error")
    assert meta["prometheus"] == memory_leak_run.prometheus
    assert "cleanup_errors" not in meta, meta["cleanup_errors"]
    png = run_dir / "plots" / "dashboard.png"
    assert png.is_file(), sorted(p.name for p in run_dir.rglob("*"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 50_000
    # The report shows it: report.md links the file, report.html (self-contained) embeds it.
    assert "](plots/dashboard.png)" in (run_dir / "report.md").read_text()
    embedded = base64.b64encode(png.read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{embedded}"' in (run_dir / "report.html").read_text()
    # The run took its file_sd target with it.
    assert not (memory_leak_run.targets / f"{run_dir.name}.json").exists()


def test_lab_run_keeps_the_apps_own_scenario_label(memory_leak_run: LabRun) -> None:
    """lab_fault_active{scenario} of a run: one series per scenario, the run's at 1."""
    meta = memory_leak_run.meta
    at = (
        datetime.fromisoformat(meta["load_started_at"]).timestamp()
        + datetime.fromisoformat(meta["load_ended_at"]).timestamp()
    ) / 2
    expr = f'max by (scenario) (lab_fault_active{{run_id="{meta["run_id"]}"}})'
    error, result = _instant(memory_leak_run.prometheus, expr, at)
    assert error is None, error
    active = {item["metric"].get("scenario"): float(item["value"][1]) for item in result}
    assert len(active) > 1 and active.get("memory-leak") == 1.0, active
    assert sum(active.values()) == 1.0, active
