"""bad-deploy's procedures, step by step, against a recording fleet.

The fleet records what a procedure asks of it; each release it starts is a real
HTTP server on loopback answering /healthz and /readyz as told (the scenario's
broken release: liveness 200, readiness 503), so the probes the procedures send
are real requests. The real fleet (nginx, app processes, Alembic) is
tests/scenarios/test_bad_deploy.py's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from faults import bad_deploy
from faults._contract import Instance, Release, RolloutStopped

pytestmark = pytest.mark.unit


@dataclass
class Release_:
    name: str
    url: str
    statuses: dict[str, int]
    server: ThreadingHTTPServer | None = None


def _serve(statuses: dict[str, int]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses.get(self.path, 404))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class RecordingFleet:
    """A Fleet that records; `new_statuses` is how the started release answers,
    `traffic` what the proxy would have logged for it: (requests, failed)."""

    new_statuses: dict[str, int]
    traffic: tuple[int, int] = (0, 0)
    stop_after_waits: int | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    schema: str = bad_deploy.LIVE_REVISION
    waits: int = 0

    def __post_init__(self) -> None:
        self.blue = Release_("blue", "http://127.0.0.1:9", {})
        self._live: Release_ = self.blue
        self.servers: list[ThreadingHTTPServer] = []

    @property
    def live(self) -> Instance:
        return self._live

    def revision(self) -> str:
        return self.schema

    def migrate(self, revision: str) -> None:
        self.calls.append(("migrate", revision))
        self.schema = revision

    def start(self, release: Release) -> Instance:
        server = _serve(self.new_statuses)
        self.servers.append(server)
        green = Release_("green", f"http://127.0.0.1:{server.server_address[1]}",
                         self.new_statuses, server)  # fmt: skip
        self.calls.append(("start", release.revision))
        return green

    def switch(self, to: Instance) -> None:
        self.calls.append(("switch", to.name))
        assert isinstance(to, Release_)
        self._live = to

    def stop(self, instance: Instance) -> None:
        self.calls.append(("stop", instance.name))

    def served(self, instance: Instance, since: float) -> tuple[int, int]:
        return self.traffic

    def wait(self, seconds: float) -> None:
        self.waits += 1
        if self.stop_after_waits is not None and self.waits > self.stop_after_waits:
            raise RolloutStopped

    def note(self, event: str, **detail: Any) -> None:
        self.calls.append(("note", event))

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


BROKEN = {"/healthz": 200, "/readyz": 503}  # up, and its database does not answer
HEALTHY = {"/healthz": 200, "/readyz": 200}


@pytest.fixture
def fleet_of() -> Iterator[Any]:
    made: list[RecordingFleet] = []

    def make(statuses: dict[str, int], **kwargs: Any) -> RecordingFleet:
        fleet = RecordingFleet(statuses, **kwargs)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()


def params(**changes: Any) -> bad_deploy.DeployParams:
    # Short gate and bake: the waits are the recording fleet's, the probes real.
    return bad_deploy.DeployParams(gate_timeout_s=1.0, bake_s=2.0, **changes)


def steps(fleet: RecordingFleet) -> list[tuple[str, Any]]:
    return [c for c in fleet.calls if c[0] != "note"]


def test_the_faulty_script_switches_to_a_release_that_is_only_alive(fleet_of: Any) -> None:
    fleet = fleet_of(BROKEN)
    outcome = bad_deploy.SwitchWhenUp(params()).deploy(fleet)
    assert outcome == "switched"
    assert steps(fleet) == [("migrate", "0009"), ("start", "0009"), ("switch", "green"),
                            ("stop", "blue")]  # fmt: skip
    assert fleet.live.name == "green" and fleet.schema == "0009"  # nothing to go back to


def test_the_gate_refuses_a_release_that_is_not_ready(fleet_of: Any) -> None:
    fleet = fleet_of(BROKEN)
    outcome = bad_deploy.GatedBlueGreen(params()).deploy(fleet)
    assert outcome == "refused"
    # Never switched: blue served throughout; green stopped, its migration downgraded.
    assert steps(fleet) == [("migrate", "0009"), ("start", "0009"), ("stop", "green"),
                            ("migrate", "0008")]  # fmt: skip
    assert ("note", "gate refused") in fleet.calls
    assert fleet.live.name == "blue" and fleet.schema == "0008"


def test_a_ready_release_that_fails_its_traffic_is_rolled_back(fleet_of: Any) -> None:
    fleet = fleet_of(HEALTHY, traffic=(100, 8))  # a read replica: the orders fail
    outcome = bad_deploy.GatedBlueGreen(params()).deploy(fleet)
    assert outcome == "rolled back"
    assert steps(fleet) == [("migrate", "0009"), ("start", "0009"), ("switch", "green"),
                            ("switch", "blue"), ("stop", "green"),
                            ("migrate", "0008")]  # fmt: skip
    assert ("note", "rolling back") in fleet.calls
    assert fleet.live.name == "blue" and fleet.schema == "0008"


def test_the_error_rate_is_judged_only_on_enough_answers(fleet_of: Any) -> None:
    # 1 failure in 5 answers is 20%, but too few to judge: the bake goes on to its end.
    fleet = fleet_of(HEALTHY, traffic=(5, 1))
    assert bad_deploy.GatedBlueGreen(params(min_requests=20)).deploy(fleet) == "switched"


def test_a_good_release_goes_live_and_the_old_one_stops_after_the_bake(fleet_of: Any) -> None:
    fleet = fleet_of(HEALTHY, traffic=(400, 0))
    outcome = bad_deploy.GatedBlueGreen(params()).deploy(fleet)
    assert outcome == "switched"
    assert steps(fleet) == [("migrate", "0009"), ("start", "0009"), ("switch", "green"),
                            ("stop", "blue")]  # fmt: skip
    assert fleet.schema == "0009"


def test_a_stopping_run_ends_the_procedure_where_it_is(fleet_of: Any) -> None:
    fleet = fleet_of(HEALTHY, traffic=(400, 0), stop_after_waits=4)
    with pytest.raises(RolloutStopped):
        bad_deploy.GatedBlueGreen(params()).deploy(fleet)


def test_each_mistake_is_in_the_release_settings_alone() -> None:
    live = {"DATABASE_URL": "postgresql+psycopg://lab:p%40ss@127.0.0.1:5432/shop"}
    staging = bad_deploy.release_for("database-url").env(live)
    assert staging == {
        "DATABASE_URL": "postgresql+psycopg://lab:p%40ss@127.0.0.1:5432/shop_staging"
    }
    replica = bad_deploy.release_for("read-only").env(live)["DATABASE_URL"]
    assert replica.startswith(live["DATABASE_URL"] + "?options=")
    assert "default_transaction_read_only%3Don" in replica


def test_the_release_scenario_needs_nginx_and_a_deploy_inside_the_load() -> None:
    from lab.errors import LabError
    from lab.runner import RunOptions, _validate

    with pytest.raises(LabError, match="give a longer --duration"):
        _validate(RunOptions("bad-deploy", duration_s=3))


def test_the_rollout_counts_each_failed_request_in_its_phase(tmp_path: Any) -> None:
    """nginx's lines against the timeline: before, during the switch, on the new
    release, during the rollback (the counts the summary's failed_* come from)."""
    from lab.app_server import AppConfig, AppServer
    from lab.proxy import Nginx
    from lab.rollout import Rollout, RunningRelease, _Event

    proxy = Nginx(tmp_path / "nginx", tmp_path / "access.log", tmp_path / "error.log")
    blue = AppServer(AppConfig(port=1111), None, None)
    rollout = Rollout(bad_deploy.GatedBlueGreen(params()), blue, proxy, tmp_path, "sqlite://")
    rollout.instances.append(RunningRelease("green", AppServer(AppConfig(port=2222), None, None)))
    t0 = 1_000.0
    rollout.started_at, rollout.ended_at = t0, t0 + 6
    rollout.events = [
        _Event(t0, "deploy started"),
        _Event(t0 + 2, "switched", {"to": "green"}),
        _Event(t0 + 3, "rolling back"),
        _Event(t0 + 3.5, "switched", {"to": "blue"}),
        _Event(t0 + 7, "schema at the end", {"revision": "0008"}),
    ]
    lines = [  # (seconds after t0, status, port)
        (-1.0, 500, 1111), (-0.5, 200, 1111),  # before the deploy: 1 failed
        (1.0, 503, 1111), (1.5, 200, 1111),  # deploy started, not yet switched: 1
        (2.2, 500, 2222), (2.5, 500, 2222), (2.9, 200, 2222),  # on the new release: 2
        (3.2, 500, 2222), (3.6, 200, 1111), (5.0, 200, 1111),  # rolling back: 1
    ]  # fmt: skip
    proxy.access_log.write_text("".join(
        f"{t0 + dt:.3f} {status} 127.0.0.1:{port} 0.010 GET /products\n"
        for dt, status, port in lines
    ) + "1000.000 50")  # a torn last line, as when nginx was stopped mid-write  # fmt: skip
    assert rollout.counts() == {
        "requests_proxied": 10,
        "failed_requests": 5,
        "failed_before_deploy": 1,
        "failed_during_switch": 1,
        "failed_on_new_release": 2,
        "failed_during_rollback": 1,
        "requests_to_new_release": 4,
        "rolled_back": 1,
        "new_release_live": 0,
        "schema_revision": 8,
    }


def test_serve_refuses_a_release_scenario_with_the_command_that_runs_it() -> None:
    from lab.commands import serve
    from lab.errors import LabError

    with pytest.raises(LabError, match="run `lab run bad-deploy`"):
        serve.run("bad-deploy")


def test_the_proxy_log_is_followed_line_by_line_as_nginx_writes_it(tmp_path: Any) -> None:
    from reports.formats import ProxyLog

    path = tmp_path / "proxy-access.log"
    path.write_bytes(b"1.000 200 127.0.0.1:1 0.001 GET /a\n2.000 50")  # mid-write
    log = ProxyLog(path)
    first, offset = log.read_new(0)
    assert [x.path for x in first] == ["/a"]  # the torn line waits for its end
    with path.open("ab") as handle:
        handle.write(b"0 127.0.0.1:2 0.001 GET /b\n")
    second, offset = log.read_new(offset)
    assert [(x.status, x.path) for x in second] == [(500, "/b")]
    assert log.read_new(offset) == ([], offset) and offset == path.stat().st_size
