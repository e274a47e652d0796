"""`lab up` / `lab status` / `lab down` with the real native services.

The services run once for the module, on ports shifted by LAB_PORT_OFFSET=1000
and with their own LAB_HOME, so they never collide with a developer's `lab up`.
lab.topology reads the offset when it is imported, so the lab runs here as a
subprocess (`python -m lab.cli ...`) with that environment; the in-process
client calls take the addresses from `lab status --json`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from lab.topology import LINKS
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.services]

REPO = Path(__file__).resolve().parents[2]
OFFSET = "1000"
ROWS = 20_000
SERVICES = {"postgres", "redis", "toxiproxy", "prometheus", "upstream", "inventory"}


def lab(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def flat(text: str) -> str:
    """Rich wraps long lines: compare with whitespace collapsed."""
    return " ".join(text.split())


def lab_env(home: Path, offset: str = OFFSET, **extra: str) -> dict[str, str]:
    return {**os.environ, "LAB_HOME": str(home), "LAB_PORT_OFFSET": offset, "COLUMNS": "200",
            **extra}  # fmt: skip


def reachable_tmp_dir(prefix: str) -> Path:
    """A directory the `postgres` user can enter (mkdtemp makes it 700; pytest's base is 700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    """Running, and not a zombie: a zombie holds nothing and waits for its parent to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def listening(ports: set[int]) -> set[int]:
    return {
        c.laddr.port
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
    }


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def toxiproxy_binary() -> bool:
    return (REPO / ".lab" / "bin" / "toxiproxy-server").is_file() or bool(
        shutil.which("toxiproxy-server")
    )


def postgres_binary() -> bool:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return False
    bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    return (Path(bindir.stdout.strip()) / "initdb").is_file()


@dataclass
class Lab:
    home: Path
    env: dict[str, str]
    up_output: str
    status: dict[str, Any]
    pids: set[int]

    def service(self, name: str) -> dict[str, Any]:
        return next(s for s in self.status["services"] if s["name"] == name)

    def port(self, name: str) -> int:
        return int(self.service(name)["port"])

    @property
    def toxiproxy(self) -> str:
        return f"http://127.0.0.1:{self.port('toxiproxy')}"

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.port('upstream')}"

    def proxy_port(self, name: str) -> int:
        return int(self.status["proxies"][name]["listen"].rsplit(":", 1)[1])

    def ports(self) -> set[int]:
        return {self.port(s) for s in SERVICES} | {
            self.proxy_port(p) for p in self.status["proxies"]
        }


def current_status(env: dict[str, str]) -> dict[str, Any]:
    result = lab("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def services() -> Iterator[Lab]:
    need(postgres_binary(), "PostgreSQL is not installed: run `make services`")
    for binary in ("redis-server", "prometheus"):
        need(shutil.which(binary) is not None, f"{binary} is not installed: run `make services`")
    need(toxiproxy_binary(), "toxiproxy-server is not built: run `make services`")
    home = reachable_tmp_dir("lab-services-")
    env = lab_env(home)
    try:
        started = time.perf_counter()
        result = lab("up", "--rows", str(ROWS), env=env)
        assert result.returncode == 0, result.stderr
        print(f"\n`lab up --rows {ROWS}` took {time.perf_counter() - started:.1f}s")
        for line in result.stderr.splitlines():
            if "seeded" in line:
                print(line.strip())
        status = current_status(env)
        pids: set[int] = set()
        for service in status["services"]:
            if service["pid"]:
                pids.add(service["pid"])
                proc = psutil.Process(service["pid"])
                pids.update(child.pid for child in proc.children(recursive=True))
        yield Lab(home, env, result.stderr, status, pids)
    finally:
        lab("down", env=env)
        shutil.rmtree(home, ignore_errors=True)


def test_status_reports_every_service_up_with_a_version(services: Lab) -> None:
    by_name = {s["name"]: s for s in services.status["services"]}
    assert set(by_name) == SERVICES
    for name, service in by_name.items():
        assert service["state"] == "up", (name, service)
        assert service["health"] == "ok", (name, service)
        assert service["version"], (name, service)
        assert service["pid"], (name, service)
        assert Path(service["log"]).is_file(), (name, service)
    assert by_name["postgres"]["version"].startswith("15")
    # The human table says the same, and where the logs are.
    table = lab("status", env=services.env)
    assert table.returncode == 0, table.stderr
    for name in SERVICES:
        assert name in table.stderr
    assert f"logs: {services.home}" in flat(table.stderr)


def test_up_twice_is_harmless(services: Lab) -> None:
    again = lab("up", "--rows", str(ROWS), env=services.env)
    assert again.returncode == 0, again.stderr
    output = flat(again.stderr)
    for name in SERVICES:
        assert f"{name}: already up" in output
    assert f"already seeded ({ROWS:,} products)" in output
    after = {s["name"]: s["pid"] for s in current_status(services.env)["services"]}
    assert after == {s["name"]: s["pid"] for s in services.status["services"]}


def test_postgres_runs_as_postgres_with_pg_stat_statements_and_a_seeded_shop(
    services: Lab,
) -> None:
    import psycopg

    postmaster = psutil.Process(services.service("postgres")["pid"])
    expected_user = "postgres" if os.geteuid() == 0 else psutil.Process().username()
    assert postmaster.username() == expected_user
    assert all(child.username() == expected_user for child in postmaster.children())

    port = services.port("postgres")
    with psycopg.connect(f"host=127.0.0.1 port={port} user=lab dbname=shop") as conn:

        def one(sql: str) -> tuple[Any, ...]:
            row = conn.execute(sql).fetchone()
            assert row is not None, sql
            return row

        assert "pg_stat_statements" in one("SHOW shared_preload_libraries")[0]
        one("SELECT count(*) FROM pg_stat_statements")
        counts = {
            t: one(f"SELECT count(*) FROM {t}")[0]
            for t in ("users", "products", "orders", "order_items", "payments")
        }
        assert counts["products"] == ROWS
        assert counts["users"] == ROWS // 10
        assert counts["orders"] == counts["payments"] == ROWS // 5
        # The sequences were moved past the seeded ids: the app's own inserts work.
        new_id = one(
            "INSERT INTO orders (user_id, status, total) VALUES (1, 'pending', 1) RETURNING id"
        )[0]
        assert new_id == ROWS // 5 + 1
        conn.rollback()
        pg_sums = one(
            "SELECT sum(stock), sum(price), (SELECT sum(product_id * quantity) FROM order_items) "
            "FROM products"
        )
    # COPY loads the very rows the SQLite path inserts.
    from sqlalchemy import create_engine, text

    from target_app.seed import seed

    sqlite_url = f"sqlite:///{services.home}/check.sqlite"
    seed(sqlite_url, ROWS)
    engine = create_engine(sqlite_url)
    with engine.connect() as sqlite:
        sqlite_sums = sqlite.execute(
            text(
                "SELECT sum(stock), sum(price), "
                "(SELECT sum(product_id * quantity) FROM order_items) FROM products"
            )
        ).one()
    engine.dispose()
    assert pg_sums[0] == sqlite_sums[0]
    assert float(pg_sums[1]) == pytest.approx(float(sqlite_sums[1]))
    assert pg_sums[2] == sqlite_sums[2]


def test_toxiproxy_has_a_proxy_per_link_and_reset_removes_toxics(services: Lab) -> None:
    import psycopg

    from lab.services.redis import redis_command
    from lab.services.toxiproxy import add_toxic, list_toxics, proxies, remove_toxic, reset

    api = services.toxiproxy
    found = proxies(api=api)
    assert set(found) == set(LINKS)  # postgres, redis, upstream, inventory
    for name, proxy in found.items():
        assert proxy["enabled"]
        assert proxy["upstream"] == f"127.0.0.1:{services.port(name)}"

    # Through the proxies, each service answers.
    assert redis_command(services.proxy_port("redis"), "PING") == "+PONG"
    pg_proxy = services.proxy_port("postgres")
    conninfo = f"host=127.0.0.1 port={pg_proxy} user=lab dbname=shop connect_timeout=5"
    assert httpx.get(f"http://127.0.0.1:{services.proxy_port('upstream')}/healthz").is_success
    inventory = httpx.get(f"http://127.0.0.1:{services.proxy_port('inventory')}/healthz")
    assert inventory.json()["status"] == "ok"  # and its own database answered

    toxic = add_toxic("postgres", "latency", {"latency": 300}, api=api)
    assert toxic["name"] == "latency_downstream"
    assert [t["name"] for t in list_toxics("postgres", api=api)] == ["latency_downstream"]
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        assert time.perf_counter() - started >= 0.25  # the toxic is on the link

    add_toxic("redis", "timeout", {"timeout": 0}, stream="upstream", toxicity=0.5,
              name="half-dead", api=api)  # fmt: skip
    remove_toxic("redis", "half-dead", api=api)
    assert list_toxics("redis", api=api) == []

    reset(api=api)
    assert list_toxics("postgres", api=api) == []
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        assert time.perf_counter() - started < 0.25


def test_up_again_removes_toxics_left_by_a_killed_run(services: Lab) -> None:
    from lab.services.toxiproxy import add_toxic, proxies, set_enabled

    api = services.toxiproxy
    add_toxic("redis", "latency", {"latency": 1000}, api=api)
    add_toxic("upstream", "bandwidth", {"rate": 1}, stream="upstream", api=api)
    set_enabled("postgres", False, api=api)
    assert not proxies(api=api)["postgres"]["enabled"]

    again = lab("up", "--rows", str(ROWS), env=services.env)
    assert again.returncode == 0, again.stderr
    after = proxies(api=api)
    assert {name: p["toxics"] for name, p in after.items()} == {name: [] for name in LINKS}
    assert all(p["enabled"] for p in after.values())


def test_upstream_failure_rate_and_call_stats(services: Lab) -> None:
    with httpx.Client(base_url=services.upstream, timeout=10) as client:
        assert client.delete("/_control/stats").status_code == 204
        control = client.put("/_control", json={"failure_rate": 0.3, "seed": 7}).json()
        assert control["failure_rate"] == 0.3
        assert control["failure_status"] == 503
        calls = 400
        failures = sum(
            client.get(f"/inventory/SKU-{i:08d}").status_code == 503 for i in range(calls)
        )
        assert 0.22 * calls <= failures <= 0.38 * calls, failures
        stats = client.get("/_control/stats").json()
        inventory = stats["by_endpoint"]["GET /inventory/{sku}"]
        assert inventory == {"injected_failure": failures, "ok": calls - failures, "total": calls}

        # The same seed gives the same failures.
        client.put("/_control", json={"seed": 7})
        again = sum(client.get(f"/inventory/SKU-{i:08d}").status_code == 503 for i in range(calls))
        assert again == failures

        client.put("/_control", json={"failure_rate": 0.0, "latency_ms": 50})
        started = time.perf_counter()
        first = client.post("/payments", json={"order_id": 1, "amount": "12.50",
                                               "idempotency_key": "k-1"})  # fmt: skip
        assert time.perf_counter() - started >= 0.05
        assert first.status_code == 201, first.text
        replay = client.post("/payments", json={"order_id": 1, "amount": "12.50"},
                             headers={"Idempotency-Key": "k-1"})  # fmt: skip
        assert replay.status_code == 200
        assert replay.json()["id"] == first.json()["id"]
        assert replay.json()["replayed"] is True
        conflict = client.post("/payments", json={"order_id": 2, "amount": "1.00",
                                                  "idempotency_key": "k-1"})  # fmt: skip
        assert conflict.status_code == 409
        other = client.post("/payments", json={"order_id": 3, "amount": "3.00"})
        assert other.json()["id"] != first.json()["id"]
        payments = client.get("/_control/stats").json()["by_endpoint"]["POST /payments"]
        assert payments == {"ok": 2, "replayed": 1, "conflict": 1, "total": 4}
        client.put("/_control", json={"latency_ms": 0})


def test_prometheus_scrapes_a_registered_app_target(
    services: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lab.services.prometheus import register_app_target, unregister_app_target

    monkeypatch.setenv("LAB_HOME", str(services.home))
    prometheus = f"http://127.0.0.1:{services.port('prometheus')}"
    # Any /metrics will do as the "app": upstream has one.
    path = register_app_target("run-1", services.port("upstream"), {"scenario": "demo"})
    assert path.parent == services.home / "prometheus" / "targets"

    def targets() -> list[dict[str, Any]]:
        data = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()
        return list(data["data"]["activeTargets"])

    def app_up() -> bool:
        return any(
            t["labels"].get("job") == "lab-app"
            and t["labels"].get("target") == "run-1"
            and t["labels"].get("scenario") == "demo"
            and t["health"] == "up"
            for t in targets()
        )

    wait_for(app_up, 30, "Prometheus to scrape the registered target")
    jobs = {t["labels"]["job"]: t["health"] for t in targets()}
    assert jobs["toxiproxy"] == "up"
    assert jobs["prometheus"] == "up"
    assert jobs["upstream"] == "up"
    unregister_app_target("run-1")
    wait_for(
        lambda: not any(t["labels"].get("job") == "lab-app" for t in targets()),
        30,
        "Prometheus to drop the unregistered target",
    )


def test_only_starts_a_subset_and_what_it_needs(services: Lab) -> None:
    home = reachable_tmp_dir("lab-services-only-")
    env = lab_env(home, offset="2000")
    try:
        result = lab("up", "--only", "redis", env=env)
        assert result.returncode == 0, result.stderr
        states = {s["name"]: s["state"] for s in current_status(env)["services"]}
        # Redis is reached through its Toxiproxy proxy, so Toxiproxy comes along.
        assert states == {"toxiproxy": "up", "redis": "up", "postgres": "down",
                          "upstream": "down", "inventory": "down",
                          "prometheus": "down"}  # fmt: skip
    finally:
        down = lab("down", env=env)
        shutil.rmtree(home, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert "redis: stopped" in down.stderr
    assert "toxiproxy: stopped" in down.stderr


def test_a_missing_binary_names_the_install_command(services: Lab) -> None:
    home = reachable_tmp_dir("lab-services-nobin-")
    try:
        env = lab_env(home, offset="2000", PATH=str(Path(sys.executable).parent))
        result = lab("up", "--only", "redis", env=env)
        assert result.returncode == 2, result.stderr
        message = flat(result.stderr)
        assert "redis-server not found" in message
        assert "make services" in message
        assert "apt-get install -y redis-server" in message
        assert not (home / "toxiproxy" / "toxiproxy.pid").exists()  # nothing was started
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_refuses_a_lab_home_its_user_cannot_reach(services: Lab) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as another user")
    private = Path(tempfile.mkdtemp(prefix="lab-services-private-", dir="/tmp"))  # mode 700
    try:
        env = lab_env(private / "home", offset="2000")
        result = lab("up", "--only", "postgres", env=env)
        assert result.returncode == 2, result.stderr
        message = flat(result.stderr)
        assert f"cannot enter {private}" in message
        assert "LAB_HOME" in message
        assert not (private / "home" / "toxiproxy").exists()  # refused before anything started
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_down_leaves_no_process_and_no_port(services: Lab) -> None:
    ports = services.ports()
    # Each service's port, each link's proxy port: all distinct.
    assert len(ports) == len(SERVICES) + len(LINKS)
    result = lab("down", env=services.env)
    assert result.returncode == 0, result.stderr
    for name in SERVICES:
        assert f"{name}: stopped" in result.stderr
    assert [pid for pid in services.pids if alive(pid)] == []
    assert listening(ports) == set()
    assert {s["state"] for s in current_status(services.env)["services"]} == {"down"}
    again = lab("down", env=services.env)
    assert again.returncode == 0, again.stderr
    assert "nothing was running" in again.stderr
