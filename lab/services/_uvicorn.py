"""A lab service that is one of the lab's own FastAPI apps, served by uvicorn.

The fake providers (upstream/app.py) and the inventory service (inventory/app.py)
are started alike: one uvicorn process and one worker (their state, or their
pool, is the process's), from the checkout, on their link's direct port.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import ClassVar

import httpx
import psutil

from lab.errors import LabError
from lab.services._base import HOST, REPO, Service, http_health, spawn_detached
from lab.topology import LINKS

__all__ = ["UvicornApp"]


class UvicornApp(Service):
    app: ClassVar[str]  # "module:attribute"
    link: ClassVar[str]  # its key in lab.topology.LINKS
    binary_name = "uvicorn"
    install_hint = "`make install` (uvicorn is one of the lab's dependencies)"

    @property
    def port(self) -> int:
        return LINKS[self.link].direct_port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def binary(self) -> str:
        if importlib.util.find_spec("uvicorn") is None:
            raise LabError(f"uvicorn is not installed in {sys.prefix}: {self.install_hint}")
        return sys.executable

    def _matches(self, proc: psutil.Process) -> bool:
        return self.app in proc.cmdline()

    def app_env(self) -> dict[str, str]:
        """Settings of the app beyond the lab's environment."""
        return {}

    def launch(self) -> None:
        env = dict(os.environ)
        # Importable whether or not the checkout is installed (editable) in the venv.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.update(self.app_env())
        command = [
            self.binary(), "-m", "uvicorn", self.app,
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
