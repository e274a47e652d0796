"""Every dashboard panel and every rule, evaluated by a real Prometheus after real load.

The stack: the app under gunicorn (2 workers, multiprocess metrics), a real
Toxiproxy with one proxy in front of it (the load goes through it), and the
real Prometheus binary scraping both every second with the lab's rule files.
Locust drives the shop workload through the proxy with the memory-leak fault
switched on half-way, then each expression is sent to /api/v1/query as
Grafana would send it (template variables substituted).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lab.commands.dashboard import (
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
from lab.load import LoadConfig, LocustRun
from lab.processes import Child, free_port
from tests.conftest import RunningApp, need, start_app

pytestmark = [pytest.mark.integration, pytest.mark.services]

REPO = Path(__file__).resolve().parents[2]
LOAD_SECONDS = 20.0
SCRAPE_S = 1.0
# Queries are evaluated this long after the load ended, over a 12 s window
# ($__rate_interval) that still holds 8 s of load.
AFTER_LOAD_S = 4.0

# Panels whose metrics the app cannot have produced yet: the code paths that
# feed them do not exist in target_app/ (no upstream client, no circuit
# breaker, no Redis client, no background jobs). Their queries must still be
# valid PromQL; they must return nothing (this list is kept exact: a panel that
# starts producing data fails the test until it is removed from here).
NOT_YET_PRODUCED = {
    # upstream_request_duration_seconds: no upstream client in the app yet
    ("Lab overview", "Upstream latency p99 by dependency"),
    ("Lab overview", "Upstream calls by outcome"),
    ("Lab upstream dependencies", "Upstream calls by outcome"),
    ("Lab upstream dependencies", "Upstream latency p50 / p95 / p99"),
    ("Lab upstream dependencies", "Upstream error ratio"),
    ("Lab upstream dependencies", "Upstream time share of request time"),
    # circuit_breaker_state: no circuit breaker yet
    ("Lab overview", "Circuit breaker state"),
    ("Lab upstream dependencies", "Circuit breaker state"),
    # toxiproxy_proxy_*{proxy="upstream"|"redis"}: the app calls neither link yet
    ("Lab upstream dependencies", "Upstream link traffic (Toxiproxy)"),
    ("Lab upstream dependencies", "Redis link traffic (Toxiproxy)"),
    # background_jobs: no background job runner yet
    ("Lab upstream dependencies", "Background jobs by state"),
}
# Panels fed by services this test does not run: the app here uses the SQLite
# `seeded_db`, so nothing crosses a `postgres` link, and the exporters run
# under docker compose only. Same rule: valid PromQL, no data here.
NOT_IN_THIS_TEST = {
    ("Lab database", "Postgres link traffic (Toxiproxy)"),  # app on SQLite
    ("Lab database", "Postgres connections by state"),  # postgres-exporter
    ("Lab database", "Postgres locks by mode"),  # postgres-exporter
    ("Lab database", "Postgres transactions per second"),  # postgres-exporter
    ("Lab upstream dependencies", "Redis commands per second"),  # redis-exporter
    ("Lab upstream dependencies", "Redis connected clients"),  # redis-exporter
    # upstream_calls_total: the fake upstream's own counter; no upstream runs here
    ("Lab upstream dependencies", "Calls received by the upstream (server side)"),
}


def _toxiproxy_server() -> str | None:
    """`make services` puts it in <LAB_HOME or .lab>/bin; TOXIPROXY_SERVER overrides."""
    candidates = [os.environ.get("TOXIPROXY_SERVER")]
    if os.environ.get("LAB_HOME"):
        candidates.append(str(Path(os.environ["LAB_HOME"]) / "bin" / "toxiproxy-server"))
    candidates += [
        str(REPO / ".lab" / "bin" / "toxiproxy-server"),
        shutil.which("toxiproxy-server"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Stack:
    prometheus: str
    app: RunningApp
    load_started: float
    load_ended: float
    work: Path


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _prometheus_config(path: Path, prom_port: int, app_port: int, toxi_port: int) -> None:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [
            {"job_name": "lab-app", "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]},
            {"job_name": "toxiproxy", "static_configs": [{"targets": [f"127.0.0.1:{toxi_port}"]}]},
            {"job_name": "prometheus",
             "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]},
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, seeded_db: str) -> Iterator[Stack]:
    prometheus_bin = shutil.which("prometheus")
    need(prometheus_bin is not None, "the prometheus binary is not on PATH (make services)")
    toxiproxy_bin = _toxiproxy_server()
    need(toxiproxy_bin is not None,
         "no Toxiproxy server in $LAB_HOME/bin, .lab/bin or PATH (make services)")  # fmt: skip
    assert prometheus_bin is not None and toxiproxy_bin is not None
    work = tmp_path_factory.mktemp("dashboards")
    children: list[Child] = []
    app: RunningApp | None = None
    try:
        app = start_app(work, seeded_db, workers=2)
        app_port = app.server.config.port

        toxi_port = free_port()
        children.append(Child("toxiproxy", [
            toxiproxy_bin, "-host", "127.0.0.1", "-port", str(toxi_port),
            "-proxy-metrics", "-runtime-metrics",
        ], os.environ, work / "toxiproxy.log"))  # fmt: skip
        toxi = f"http://127.0.0.1:{toxi_port}"
        _wait(lambda: httpx.get(f"{toxi}/version").status_code == 200, 15, "Toxiproxy")
        proxy_port = free_port()
        response = httpx.post(f"{toxi}/proxies", json={
            "name": "app", "listen": f"127.0.0.1:{proxy_port}",
            "upstream": f"127.0.0.1:{app_port}",
        })  # fmt: skip
        assert response.status_code == 201, response.text

        prom_port = free_port()
        config = work / "prometheus.yml"
        _prometheus_config(config, prom_port, app_port, toxi_port)
        children.append(Child("prometheus", [
            prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ], os.environ, work / "prometheus.log"))  # fmt: skip
        prom = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: httpx.get(f"{prom}/-/ready").status_code == 200, 30, "Prometheus")

        def all_up() -> bool:
            active = httpx.get(f"{prom}/api/v1/targets").json()["data"]["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        _wait(all_up, 30, "Prometheus to scrape the app, Toxiproxy and itself")

        run_dir = work / "load"
        run_dir.mkdir()
        load = LocustRun(
            LoadConfig(workload="shop", users=10, spawn_rate=10, duration_s=LOAD_SECONDS,
                       seed_rows=2000),
            host=f"http://127.0.0.1:{proxy_port}", run_dir=run_dir,
        )  # fmt: skip
        load_started = time.time()
        load.start()
        try:
            time.sleep(LOAD_SECONDS / 2)
            # A fault on, so that the fault panels and annotations have something to show.
            toggle = httpx.put(f"{app.url}/_lab/faults/memory-leak", headers=app.auth)
            assert toggle.status_code == 200, toggle.text
            _wait(lambda: not load.running(), LOAD_SECONDS + 30, "Locust to finish")
        finally:
            load.stop()
        load_ended = time.time()
        # Scrapes after the load: Toxiproxy counts a connection's bytes when it
        # closes, and Locust's keep-alive connections close when it stops.
        time.sleep(AFTER_LOAD_S + 2 * SCRAPE_S)
        assert (run_dir / "locust_stats.csv").is_file(), (run_dir / "locust.log").read_text()
        yield Stack(prom, app, load_started, load_ended, work)
    finally:
        for child in reversed(children):
            child.stop()
        if app is not None:
            app.server.stop()


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
    at = stack.load_ended + AFTER_LOAD_S
    failures: list[str] = []
    data: dict[tuple[str, str], bool] = defaultdict(bool)
    dashboards = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert dashboards
    for path in dashboards:
        variables = template_defaults(path)
        for query in [*panel_queries(path), *annotation_queries(path)]:
            expr = substitute(query.expr, interval_s=11, scrape_interval_s=SCRAPE_S,
                              range_s=LOAD_SECONDS, variables=variables)  # fmt: skip
            error, result = _instant(stack.prometheus, expr, at)
            if error:
                failures.append(f"{query.dashboard} / {query.panel}: {error}\n    {expr}")
            data[(query.dashboard, query.panel)] |= _has_finite_value(result)
    for rule in rule_queries(RULES_DIR):
        error, _ = _instant(stack.prometheus, rule.expr, at)
        if error:
            failures.append(f"rule {rule.group} / {rule.name}: {error}")
    assert not failures, "queries Prometheus refused:\n" + "\n".join(failures)

    exempt = NOT_YET_PRODUCED | NOT_IN_THIS_TEST
    assert exempt <= set(data), f"listed panels that do not exist: {sorted(exempt - set(data))}"
    empty = sorted(key for key, has in data.items() if not has and key not in exempt)
    assert not empty, f"panels without data after {LOAD_SECONDS:.0f} s of load: {empty}"
    now_producing = sorted(key for key in exempt if data[key])
    assert not now_producing, f"these produce data now, take them off the lists: {now_producing}"


def test_prometheus_evaluates_every_rule_without_error(stack: Stack) -> None:
    groups = httpx.get(f"{stack.prometheus}/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(rule_queries(RULES_DIR))
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] == "err"]
    assert not broken, broken
    # Recording rules the dashboards read have series from the load.
    for name in ("lab:http_request_duration_seconds:p99_1m", "lab:db_time_share:ratio_rate1m",
                 "lab:worker_resident_memory_bytes:deriv5m", "lab:db_pool_saturation:ratio",
                 "lab:http_5xx_ratio:rate1m"):  # fmt: skip
        error, result = _instant(stack.prometheus, name, stack.load_ended - 1)
        assert error is None and _has_finite_value(result), name
    # The memory-leak fault was switched on: its info alert is pending or firing.
    alerts = httpx.get(f"{stack.prometheus}/api/v1/alerts").json()["data"]["alerts"]
    assert any(
        a["labels"]["alertname"] == "LabFaultActive" and a["labels"]["scenario"] == "memory-leak"
        for a in alerts
    ), alerts


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
