"""Shared fixtures: a real app process, and the services policy.

With CI=true a test whose service is missing fails; locally it skips with the reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.app_server import AppConfig, AppServer
from lab.processes import free_port

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI: a missing service must never pass silently there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("lab-home")
    os.environ["LAB_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def seeded_db(lab_home: Path) -> str:
    from target_app.seed import seed

    url = f"sqlite:///{lab_home}/data/shop-2000.sqlite"
    seed(url, 2000)
    return url


class RunningApp:
    def __init__(self, server: AppServer, token: str, state_file: Path) -> None:
        self.server = server
        self.token = token
        self.state_file = state_file
        self.url = server.config.base_url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def start_app(tmp_path: Path, db_url: str, workers: int = 1, **env: str) -> RunningApp:
    token = secrets.token_urlsafe(24)
    state_file = tmp_path / "toggles.json"
    config = AppConfig(port=free_port(), workers=workers)
    config.env = {
        "DATABASE_URL": db_url,
        "LAB_STATE_FILE": str(state_file),
        "LAB_ADMIN_ENABLED": "true",
        "LAB_ADMIN_TOKEN": token,
        "FAULTS": "",
        **env,
    }
    server = AppServer(config, tmp_path / "app.log", tmp_path / "prom" if workers > 1 else None)
    server.start()
    return RunningApp(server, token, state_file)


@pytest.fixture
def app_process(tmp_path: Path, seeded_db: str) -> Iterator[RunningApp]:
    running = start_app(tmp_path, seeded_db)
    yield running
    running.server.stop()


# --- native services (lab up), for the scenarios and tests that need them ---

REPO = Path(__file__).resolve().parents[1]
SERVICES_SEED_ROWS = 1_000_000  # products `lab up` seeds (the lab's own default)
# test_services.py uses 1000 and 2000 for its own labs; LAB_TEST_PORT_OFFSET lets
# two test sessions (two developers, or two helpers) share one machine.
OFFSET = os.environ.get("LAB_TEST_PORT_OFFSET", "3000")


class LabServices:
    def __init__(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="lab-scenarios-", dir="/tmp"))
        home.chmod(0o755)  # the postgres user must be able to enter it
        self.home = home
        self.env = {"LAB_HOME": str(home), "LAB_PORT_OFFSET": OFFSET, "COLUMNS": "200"}
        self.started: set[str] = set()

    def lab(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lab.cli", *args], env={**os.environ, **self.env}, cwd=REPO,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def up(self, *names: str, rows: int = SERVICES_SEED_ROWS) -> dict[str, str]:
        if not self.started:
            # Services a killed earlier session left on these ports (its LAB_HOME
            # is gone, so only `lab down`'s stray clean-up can find them).
            self.lab("down")
        binaries = {"postgres": "pg_ctl", "redis": "redis-server", "prometheus": "prometheus"}
        for name in names:
            if name in binaries and name != "postgres":
                need(shutil.which(binaries[name]) is not None, f"{binaries[name]} is not installed")
        wanted = [n for n in names if n not in self.started]
        if wanted:
            only = [arg for n in wanted for arg in ("--only", n)]
            done = self.lab("up", *only, "--rows", str(rows))
            need(done.returncode == 0, f"`lab up {' '.join(only)}` failed: {done.stderr[-2000:]}")
            self.started.update(wanted)
        return self.env

    def down(self) -> None:
        if self.started:
            self.lab("down")
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_services() -> Iterator[Callable[..., dict[str, str]]]:
    services = LabServices()
    try:
        yield services.up
    finally:
        services.down()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The scenario proofs' measured values next to their thresholds."""
    from tests.scenarios.contract import MEASURED

    if not MEASURED:
        return
    write = terminalreporter.write_line
    terminalreporter.section("scenario symptoms measured (faulty | fixed vs threshold)")
    for row in MEASURED:
        p95 = " -> ".join("-" if v is None else f"{v:.0f}" for v in row["p95_ms"])
        write(
            f"{row['slug']:<20} {_num(row['faulty']):>9} | {_num(row['fixed']):>9}"
            f"  {row['op']} {_num(row['threshold']):<7} p95 ms {p95:<13} {row['metric']}"
        )


def _num(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else str(value)
