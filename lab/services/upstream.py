"""upstream: the fake third-party payment and inventory API (the `upstream` package).

One uvicorn process, one worker: its behaviour and its call counters live in
that process, so `PUT /_control` and `GET /_control/stats` see every call.
UPSTREAM_LATENCY_MS, UPSTREAM_JITTER_MS, UPSTREAM_FAILURE_RATE,
UPSTREAM_FAILURE_STATUS and UPSTREAM_SEED in `lab up`'s environment set its
behaviour at start-up.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import httpx
import psutil

from lab.errors import LabError
from lab.services._base import HOST, REPO, Service, http_health, spawn_detached
from lab.topology import LINKS

__all__ = ["SERVICE", "Upstream"]

APP = "upstream.app:app"


class Upstream(Service):
    name = "upstream"
    rank = 30
    requires = ("toxiproxy",)
    binary_name = "uvicorn"
    install_hint = "`make install` (uvicorn is one of the lab's dependencies)"

    @property
    def port(self) -> int:
        return LINKS["upstream"].direct_port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def binary(self) -> str:
        if importlib.util.find_spec("uvicorn") is None:
            raise LabError(f"uvicorn is not installed in {sys.prefix}: {self.install_hint}")
        return sys.executable

    def _matches(self, proc: psutil.Process) -> bool:
        return APP in proc.cmdline()

    def launch(self) -> None:
        env = dict(os.environ)
        # Importable whether or not the checkout is installed (editable) in the venv.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        command = [
            self.binary(), "-m", "uvicorn", APP,
            "--host", HOST,
            "--port", str(self.port),
            "--workers", "1",
            "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
        pid = spawn_detached(command, self.log_path, env=env, cwd=REPO)
        self.pid_path.write_text(f"{pid}\n")

    def health(self) -> tuple[bool, str]:
        return http_health(f"{self.url}/healthz")

    def version(self) -> str | None:
        try:
            return str(httpx.get(f"{self.url}/healthz", timeout=1.0).json()["version"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None


SERVICE = Upstream()
