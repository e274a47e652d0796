"""`lab serve SLUG`: the scenario's services that run are the app's, as `lab run` gives them."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import faults
from lab import runner
from lab.commands import serve

pytestmark = pytest.mark.unit


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def test_a_running_service_is_passed_and_a_missing_one_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = faults.get("in-memory-sessions")  # requires redis
    console, out = _console()
    monkeypatch.setattr(runner, "available_services", lambda: {"redis", "toxiproxy"})
    env = serve._services_of(scenario, console)
    assert env["REDIS_URL"].startswith("redis://") and "DATABASE_URL" not in env
    assert out.getvalue() == ""

    monkeypatch.setattr(runner, "available_services", set)
    assert serve._services_of(scenario, console) == {}
    assert "redis not running: `make up`" in out.getvalue()


def test_a_scenario_with_job_workers_says_serve_does_not_start_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console, out = _console()
    monkeypatch.setattr(runner, "available_services", lambda: {"postgres", "redis", "toxiproxy"})
    env = serve._services_of(faults.get("long-task-inline"), console)
    assert env["DATABASE_URL"].startswith("postgresql") and "REDIS_URL" in env
    assert "does not start: `lab run` does" in out.getvalue()
    assert serve._services_of(None, console) == {}
