"""bad-deploy: the shop behind nginx, a broken release deployed 5 s into the load.

Faulty switches as soon as the new release's process answers and stops the old one:
the requests that need the database fail from then on. Fixed refuses the release at
its readiness gate (or, when readiness cannot see the mistake, rolls it back on its
error rate), stops it and downgrades its migration: no request fails.

Counted from nginx's own access log (each request's status and the release that
answered it: its upstream address), from PostgreSQL's alembic_version, and from
Locust's requests, not from the lab's rollout record nor from the app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import create_engine, text

from reports.formats import ProxyLine, ProxyLog
from tests.scenarios.contract import REPO, assert_symptoms, direct_database_url, run_variant

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

SLUG = "bad-deploy"
# The deploy starts 5 s in and is over by about 16 s (a refused gate: 10 s of probes);
# 20 s of load hold it and what comes after.
DURATION = "20s"


def _run_dir(out: Path) -> Path:
    [run_dir] = [p.parent for p in out.glob("*/meta.json")]
    return run_dir


def _releases(run_dir: Path) -> tuple[str, str | None]:
    """The upstream addresses of the live release (the run's app) and of the new one."""
    meta = json.loads((run_dir / "meta.json").read_text())
    blue = f"127.0.0.1:{meta['app']['port']}"
    # The new release's port: its process's command line, as the run recorded its log.
    rollout = json.loads((run_dir / "rollout.json").read_text())
    ports = [e["port"] for e in rollout["timeline"] if e["event"] == "started"]
    return blue, (f"127.0.0.1:{ports[0]}" if ports else None)


def _schema_revision() -> str:
    engine = create_engine(direct_database_url())
    try:
        with engine.connect() as conn:
            return str(conn.scalar(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def _failed(lines: list[ProxyLine]) -> list[ProxyLine]:
    return [x for x in lines if x.status >= 500]


def _locust_failures(summary: dict[str, Any]) -> int:
    return round(summary["error_rate"] * summary["requests"])


def test_bad_deploy_a_gated_switch_fails_no_request_an_ungated_one_fails_many(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    faulty = run_variant(SLUG, False, tmp_path / "faulty", env, duration=DURATION)
    faulty_schema = _schema_revision()
    fixed = run_variant(SLUG, True, tmp_path / "fixed", env, duration=DURATION)
    fixed_schema = _schema_revision()
    assert_symptoms(SLUG, faulty, fixed)

    # Faulty: switched to the broken release, which failed requests until the end.
    run = _run_dir(tmp_path / "faulty")
    blue, green = _releases(run)
    log = ProxyLog(run / ProxyLog.NAME).read()
    assert green is not None
    failed = _failed(log)
    assert failed and {x.upstream for x in failed} == {green}, {x.upstream for x in failed}
    # Nothing went back: the last requests of the run were still the new release's.
    assert {x.upstream for x in log[-20:]} == {green}
    assert faulty_schema == "0009"  # its migration stayed

    # Fixed: the new release started, was refused, and never got a request; the
    # migration it brought was downgraded. Not one failed request, nginx's or Locust's.
    run = _run_dir(tmp_path / "fixed")
    blue, green = _releases(run)
    log = ProxyLog(run / ProxyLog.NAME).read()
    assert green is not None, "the fixed procedure never started the new release"
    assert _failed(log) == []
    assert {x.upstream for x in log} == {blue}
    assert _locust_failures(fixed) == 0
    assert fixed_schema == "0008"
    # The load reached the proxy all along: the count is over a real run's traffic.
    assert len(log) >= fixed["requests"] > 100, (len(log), fixed["requests"])


def test_bad_deploy_a_mistake_readiness_cannot_see_is_rolled_back_on_its_error_rate(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    fixed = run_variant(SLUG, True, tmp_path, env, duration=DURATION, param="mistake=read-only")
    run = _run_dir(tmp_path)
    blue, green = _releases(run)
    log = ProxyLog(run / ProxyLog.NAME).read()
    assert green is not None
    on_green = [x for x in log if x.upstream == green]
    # The gate let it through (its readiness probe passed) and its traffic failed:
    # the mistake is real and only the error-rate watch could see it.
    assert on_green and _failed(on_green), "the new release served nothing, or failed nothing"
    # Then the proxy went back to the old release, which failed nothing, and served
    # the rest of the run.
    back = max(x.ts for x in on_green)
    assert _failed([x for x in log if x.upstream == blue]) == []
    assert [x for x in log if x.ts > back + 1.0 and x.upstream == blue]
    assert {x.upstream for x in log if x.ts > back + 1.0} == {blue}
    assert _schema_revision() == "0008"
    # What the run's summary says it cost, as nginx counted it.
    assert fixed["failed_requests"] == len(_failed(log))


def test_ctrl_c_mid_deploy_leaves_no_release_and_no_nginx_running(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    args = [sys.executable, "-m", "lab.cli", "run", SLUG, "--fixed", "--out", str(tmp_path),
            "--duration", "60s", "--param", "at_s=1", "--param", "gate_timeout_s=120"]  # fmt: skip
    lab = subprocess.Popen(
        args, env={**os.environ, **env}, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        # Until the new release runs next to the live one, nginx in front: mid-deploy.
        deadline = time.monotonic() + 90
        children: list[psutil.Process] = []
        while time.monotonic() < deadline:
            children = psutil.Process(lab.pid).children(recursive=True)
            lines = [" ".join(c.cmdline()) for c in children if c.is_running()]
            apps = [x for x in lines if "target_app.main:create_app" in x]
            if len(apps) == 2 and any("nginx" in x for x in lines):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the deploy never had both releases running")
        lab.send_signal(signal.SIGINT)
        stdout, _ = lab.communicate(timeout=90)
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGKILL)
    assert lab.returncode == 130
    time.sleep(0.5)
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"orphans: {[c.cmdline() for c in survivors]}"
    run = Path(stdout.strip().splitlines()[-1])
    rollout = json.loads((run / "rollout.json").read_text())
    assert rollout["outcome"] == "stopped" and rollout["live_at_end"] == "blue"
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
