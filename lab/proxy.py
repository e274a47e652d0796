"""nginx in front of the app: the reverse proxy a release switch goes through.

A release scenario (faults/bad_deploy.py) runs the app as production does, behind a
real reverse proxy, so that switching releases is what it is there: the upstream
rewritten and nginx reloaded. A reload is graceful: the master starts new workers
with the new upstream and lets the old ones finish the requests they hold, so a
switch itself drops nothing (tests/integration/test_proxy.py counts it).

The proxy's access log (`proxy-access.log` in the run dir) is the record a
procedure's error-rate check and the run's failed-request counts read: each request
with its time, status and the release (upstream address) that answered it.

Toxiproxy is not used for this: its proxy update closes the connections it holds.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import psutil

from lab.errors import LabError
from lab.processes import Child, free_port
from reports.formats import ProxyLog

__all__ = ["ACCESS_LOG", "PROBE_HEADERS", "Nginx", "nginx_binary"]

ACCESS_LOG = ProxyLog.NAME
INSTALL_HINT = "`make services` (or `apt-get install -y nginx-light`)"
LOG_FORMAT = ProxyLog.NGINX_FORMAT  # each request: when, status, who answered, how long
UPSTREAM_HEADER = "X-Lab-Upstream"  # which release answered: the switch's proof
PROBE_HEADERS = {"X-Lab-Probe": "1"}  # the lab's own requests: not traffic, not logged


def nginx_binary() -> str:
    """nginx on PATH, or Debian's /usr/sbin/nginx (not on a non-root PATH)."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    if found is None:
        raise LabError(f"nginx is not installed; install it with {INSTALL_HINT}")
    return found


class Nginx:
    """One nginx master (and its worker) for one run, its files in `home`."""

    def __init__(
        self, home: Path, access_log: Path, error_log: Path, port: int | None = None
    ) -> None:
        self.home = home
        self.access_log = access_log
        self.error_log = error_log
        self.port = port or free_port()
        self.child: Child | None = None
        self.upstream_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _conf(self) -> str:
        assert self.upstream_port is not None
        home = self.home
        # Run by root (CI), nginx would hand requests to workers running as nobody, who
        # cannot enter a private run dir; the lab's nginx listens on loopback only.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes 1;
pid {home}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 2048; }}
http {{
    log_format lab '{LOG_FORMAT}';
    # The lab's own probes (the switch's check) are not traffic: not logged.
    map $http_x_lab_probe $traffic {{ "" 1; default 0; }}
    access_log {self.access_log} lab if=$traffic;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    upstream live {{
        server 127.0.0.1:{self.upstream_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://live;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            # Streamed answers (SSE) pass at once; nothing is buffered to disk.
            proxy_buffering off;
            proxy_read_timeout 60s;
            add_header {UPSTREAM_HEADER} $upstream_addr always;
        }}
    }}
}}
"""

    def _write_conf(self) -> Path:
        path = self.home / "nginx.conf"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self._conf())
        tmp.replace(path)  # a reload never reads half a file
        return path

    def start(self, upstream_port: int, timeout: float = 15.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.upstream_port = upstream_port
        conf = self._write_conf()
        command = [nginx_binary(), "-p", str(self.home), "-e", str(self.error_log),
                   "-c", str(conf), "-g", "daemon off;"]  # fmt: skip
        self.child = Child("nginx", command, dict(os.environ), self.home / "nginx.log")
        self._wait_serving(upstream_port, timeout)

    def switch(self, upstream_port: int, timeout: float = 15.0) -> None:
        """New requests go to `upstream_port` once this returns; the requests the old
        workers hold finish there (nginx's graceful reload: SIGHUP to the master)."""
        assert self.child is not None
        self.upstream_port = upstream_port
        self._write_conf()
        old = {p.pid for p in self._workers()}
        os.kill(self.child.pid, signal.SIGHUP)
        # Until the old workers stopped accepting (they have been told to shut down
        # and only finish what they hold): before that, a new connection may still
        # land on one of them and go to the old release.
        deadline = time.monotonic() + timeout
        while not self._only_new_accept(old):
            if time.monotonic() > deadline:
                raise LabError(f"nginx did not reload within {timeout:.0f} s; "
                               f"see {self.error_log}:\n{self._error_tail()}")  # fmt: skip
            time.sleep(0.05)
        self._wait_serving(upstream_port, timeout)

    def _workers(self) -> list[psutil.Process]:
        assert self.child is not None
        try:
            return psutil.Process(self.child.pid).children()
        except psutil.Error:
            return []

    def _only_new_accept(self, old: set[int]) -> bool:
        new = False
        for worker in self._workers():
            try:
                title = " ".join(worker.cmdline())
            except psutil.Error:
                continue  # gone: accepts nothing
            if worker.pid not in old:
                new = new or "worker process" in title
            elif "shutting down" not in title:
                return False  # an old worker that still accepts
        return new

    def _wait_serving(self, upstream_port: int, timeout: float) -> None:
        """Until a new connection is answered by `upstream_port` (the header nginx adds)."""
        assert self.child is not None
        wanted = f"127.0.0.1:{upstream_port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise LabError(f"nginx exited (code {self.child.process.poll()}); see "
                               f"{self.error_log}:\n{self._error_tail()}")  # fmt: skip
            try:
                # A new connection each time: only the new workers accept new ones.
                with httpx.Client(timeout=2.0) as client:
                    answer = client.get(f"{self.url}/healthz", headers=PROBE_HEADERS)
                if answer.headers.get(UPSTREAM_HEADER) == wanted:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise LabError(
            f"nginx did not send requests to {wanted} within {timeout:.0f} s; see {self.error_log}"
        )

    def _error_tail(self) -> str:
        try:
            return "\n".join(self.error_log.read_text().splitlines()[-8:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.child is not None:
            # SIGQUIT: nginx's graceful stop (workers finish what they hold).
            self.child.stop(signal.SIGQUIT, timeout=10.0)
        shutil.rmtree(self.home, ignore_errors=True)  # its conf and temp dirs; logs stay
