"""Start the target app the way production would: uvicorn, or gunicorn + uvicorn workers
(or gunicorn's threaded WSGI workers, for the deployment scenario that compares them)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from faults._contract import WorkerClass
from lab.errors import LabError
from lab.processes import Child

__all__ = ["AppConfig", "AppServer", "app_command"]


@dataclass
class AppConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    worker_class: WorkerClass = "uvicorn"
    threads: int = 1  # gthread only: requests one worker serves at once

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def server(self) -> str:
        return "gunicorn" if self.workers > 1 or self.worker_class != "uvicorn" else "uvicorn"

    @property
    def label(self) -> str:
        """How the app runs, for a person: "uvicorn x1", "gunicorn x2",
        "gunicorn gthread x5 (2 threads)"."""
        if self.worker_class == "gthread":
            return f"gunicorn gthread x{self.workers} ({self.threads} threads)"
        return f"{self.server} x{self.workers}"


def app_command(config: AppConfig) -> list[str]:
    import target_app

    conf = Path(target_app.__file__).parent / "gunicorn_conf.py"
    if config.worker_class == "gthread":
        # The command line's worker class wins over gunicorn_conf.py's uvicorn one.
        return [
            sys.executable, "-m", "gunicorn", "-c", str(conf), "--worker-class", "gthread",
            "--threads", str(config.threads),
            "--bind", f"{config.host}:{config.port}", "--workers", str(config.workers),
            "target_app.wsgi:create_wsgi_app()",
        ]  # fmt: skip
    if config.workers > 1:
        return [
            sys.executable, "-m", "gunicorn", "-c", str(conf),
            "--bind", f"{config.host}:{config.port}", "--workers", str(config.workers),
            "target_app.main:create_app()",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", "--factory", "target_app.main:create_app",
        "--host", config.host, "--port", str(config.port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


class AppServer:
    """The app as a child process; `start()` returns once /readyz answers 200."""

    def __init__(
        self, config: AppConfig, log_path: Path | None, multiproc_dir: Path | None
    ) -> None:
        """log_path None: the app writes to the lab's stdout/stderr (`lab serve`)."""
        self.config = config
        self.log_path = log_path
        self.multiproc_dir = multiproc_dir
        self.child: Child | None = None
        self.command: list[str] = []

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.config.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.multiproc_dir is not None:
            shutil.rmtree(self.multiproc_dir, ignore_errors=True)
            self.multiproc_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.multiproc_dir)
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def start(
        self,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.spawn(command, env)
        self._wait_ready(timeout)

    def spawn(self, command: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """The process, started; `start` also waits until it is ready."""
        self.command = command or app_command(self.config)
        self.child = Child("app", self.command, env or self.environment(), self.log_path)

    def _wait_ready(self, timeout: float) -> None:
        assert self.child is not None
        deadline = time.monotonic() + timeout
        url = f"{self.config.base_url}/readyz"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.child.alive():
                    code = self.child.process.poll()
                    if self.log_path is None:
                        raise LabError(f"the app exited during start-up (code {code}); see above")
                    raise LabError(
                        f"the app exited during start-up (code {code}); "
                        f"its last log lines, from {self.log_path}:\n{self.child.tail()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise LabError(
            f"the app did not become ready on {self.config.base_url} within {timeout:.0f} s; "
            f"see {self.log_path or 'its output above'}"
        )

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=20.0)
        if self.multiproc_dir is not None:
            shutil.rmtree(self.multiproc_dir, ignore_errors=True)
