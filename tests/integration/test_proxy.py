"""The lab's nginx (lab/proxy.py): a switch under load drops no request, and its
access log is a record of each one (status, who answered) to count failures from.

Real nginx, real HTTP upstreams on loopback (threaded servers in this process),
clients with kept-alive connections through the proxy, as Locust's are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.processes import free_port
from lab.proxy import UPSTREAM_HEADER, Nginx, nginx_binary
from reports.formats import ProxyLog
from tests.conftest import need

pytestmark = pytest.mark.integration

SWITCHES = 10
CLIENTS = 8


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive to nginx, as uvicorn does

    def do_GET(self) -> None:
        time.sleep(0.005)  # a request in flight when the switch comes
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _upstream() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[Nginx, list[ThreadingHTTPServer]]]:
    try:
        nginx_binary()
    except Exception as exc:
        need(False, str(exc))
    upstreams = [_upstream(), _upstream()]
    nginx = Nginx(tmp_path / "nginx", tmp_path / "access.log", tmp_path / "error.log")
    nginx.start(upstreams[0].server_address[1])
    try:
        yield nginx, upstreams
    finally:
        nginx.stop()
        for server in upstreams:
            server.shutdown()
            server.server_close()


def test_switching_under_load_drops_no_request(
    proxy: tuple[Nginx, list[ThreadingHTTPServer]],
) -> None:
    nginx, upstreams = proxy
    ports = [u.server_address[1] for u in upstreams]
    stop = threading.Event()
    failures: list[str] = []
    answered_by: dict[str, int] = {}
    lock = threading.Lock()

    resets: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=10.0) as session:  # one kept-alive connection
            while not stop.is_set():
                # As a browser (and Locust's client with max_retries, RFC 9110 9.2.2):
                # an idempotent request whose kept-alive connection was closed under it
                # is sent once more. A reload closes the old workers' idle connections,
                # and a request can cross that close on the wire.
                for _ in range(2):
                    try:
                        answer = session.get(f"{nginx.url}/products")
                        ok = answer.status_code == 200
                        who = answer.headers.get(UPSTREAM_HEADER, "?")
                        break
                    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                        ok, who = False, repr(exc)
                        with lock:
                            resets.append(who)
                    except httpx.HTTPError as exc:
                        ok, who = False, repr(exc)
                        break
                with lock:
                    if not ok:
                        failures.append(who)
                    answered_by[who] = answered_by.get(who, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for i in range(SWITCHES):
            time.sleep(0.3)
            nginx.switch(ports[(i + 1) % 2])
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    # The requirement: a switch is invisible to clients. Not one failed request.
    assert failures == [], failures[:5]
    print(f"{len(resets)} kept-alive connections closed under a request, each sent again, "
          f"in {SWITCHES} switches")  # fmt: skip
    assert {f"127.0.0.1:{p}" for p in ports} <= set(answered_by), answered_by
    # nginx logged every request the clients sent, each with its upstream, all 200.
    logged = ProxyLog(nginx.access_log).read()
    assert len(logged) == sum(answered_by.values())
    assert {x.status for x in logged} == {200}


def test_the_access_log_records_a_failed_request_and_who_failed_it(
    proxy: tuple[Nginx, list[ThreadingHTTPServer]],
) -> None:
    nginx, _ = proxy
    nothing = free_port()  # a release that is not listening: nginx answers 502 itself
    nginx.switch(nothing)  # switching is allowed; whether to is the procedure's call
    answer = httpx.get(f"{nginx.url}/products", timeout=10.0)
    assert answer.status_code == 502
    [line] = ProxyLog(nginx.access_log).read()
    assert (line.status, line.upstream) == (502, f"127.0.0.1:{nothing}")
