"""Toxiproxy: a proxy in front of every link, so any link can be degraded.

The service starts `toxiproxy-server` and installs one proxy per link of
lab/topology.py. The functions below are the client the network scenarios use:

    add_toxic("postgres", "latency", {"latency": 200, "jitter": 50})
    set_enabled("redis", False)      # the link is down
    reset()                          # every proxy enabled, every toxic gone

Each takes `api=` (Toxiproxy's base URL), by default the lab's own API port.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from lab.errors import LabError
from lab.paths import lab_home
from lab.services._base import HOST, REPO, Service, http_health, spawn_detached
from lab.topology import LINKS, TOXIPROXY_API_PORT

__all__ = [
    "SERVICE",
    "Toxiproxy",
    "add_toxic",
    "api_url",
    "list_toxics",
    "populate",
    "proxies",
    "remove_toxic",
    "reset",
    "set_enabled",
]

INSTALL = (
    "`make services` (it runs `GOBIN=<tmp> go install "
    "github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0` and moves `server` to "
    ".lab/bin/toxiproxy-server)"
)


def api_url() -> str:
    return f"http://{HOST}:{TOXIPROXY_API_PORT}"


def _request(method: str, path: str, body: Any = None, api: str | None = None) -> Any:
    base = api or api_url()
    try:
        response = httpx.request(method, f"{base}{path}", json=body, timeout=5.0)
    except httpx.TransportError as exc:
        name = exc.__class__.__name__
        raise LabError(
            f"Toxiproxy does not answer at {base} ({name}): start it with `lab up`"
        ) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("error") or response.text
        except ValueError:
            detail = response.text
        raise LabError(f"Toxiproxy refused {method} {path}: {detail.strip()}")
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def populate(api: str | None = None) -> list[dict[str, Any]]:
    """One proxy per link (listen = proxy address, upstream = direct address). Idempotent."""
    body = [
        {"name": link.name, "listen": link.proxy, "upstream": link.direct, "enabled": True}
        for link in LINKS.values()
    ]
    result = _request("POST", "/populate", body, api)
    return list(result.get("proxies", [])) if isinstance(result, dict) else []


def proxies(api: str | None = None) -> dict[str, dict[str, Any]]:
    """name -> {name, listen, upstream, enabled, toxics}."""
    return dict(_request("GET", "/proxies", api=api))


def add_toxic(
    proxy: str,
    type: str,  # Toxiproxy's own word
    attributes: dict[str, Any],
    stream: str = "downstream",
    toxicity: float = 1.0,
    name: str | None = None,
    api: str | None = None,
) -> dict[str, Any]:
    """Add a toxic (latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data).

    `stream` is "downstream" (server -> client) or "upstream"; `toxicity` the share
    of connections it affects. The name defaults to "<type>_<stream>", as Toxiproxy's.
    """
    if stream not in ("downstream", "upstream"):
        raise LabError(f"a toxic's stream is 'downstream' or 'upstream', not '{stream}'")
    body = {
        "name": name or f"{type}_{stream}",
        "type": type,
        "stream": stream,
        "toxicity": toxicity,
        "attributes": attributes,
    }
    return dict(_request("POST", f"/proxies/{proxy}/toxics", body, api))


def remove_toxic(proxy: str, name: str, api: str | None = None) -> None:
    _request("DELETE", f"/proxies/{proxy}/toxics/{name}", api=api)


def list_toxics(proxy: str, api: str | None = None) -> list[dict[str, Any]]:
    return list(_request("GET", f"/proxies/{proxy}/toxics", api=api) or [])


def reset(api: str | None = None) -> None:
    """Every proxy enabled again and every toxic removed."""
    _request("POST", "/reset", api=api)


def set_enabled(proxy: str, enabled: bool, api: str | None = None) -> dict[str, Any]:
    """`False` takes the link down: connections are refused and open ones closed."""
    return dict(_request("POST", f"/proxies/{proxy}", {"enabled": enabled}, api))


class Toxiproxy(Service):
    name = "toxiproxy"
    rank = 5
    binary_name = "toxiproxy-server"
    install_hint = INSTALL
    # The kernel's comm is cut at 15 characters.
    process_names = ("toxiproxy-server", "toxiproxy-serve")

    @property
    def port(self) -> int:
        return TOXIPROXY_API_PORT

    def ports(self) -> list[int]:
        return [self.port, *(link.proxy_port for link in LINKS.values())]

    def binary_candidates(self) -> list[str | None]:
        # TOXIPROXY_SERVER, LAB_HOME's bin, the checkout's .lab/bin (`make services`), PATH.
        return [
            os.environ.get("TOXIPROXY_SERVER"),
            str(lab_home() / "bin" / self.binary_name),
            str(REPO / ".lab" / "bin" / self.binary_name),
            *super().binary_candidates(),
        ]

    def launch(self) -> None:
        command = [
            self.binary(),
            "-host", HOST,
            "-port", str(self.port),
            "-proxy-metrics",
            "-runtime-metrics",
        ]  # fmt: skip
        pid = spawn_detached(command, self.log_path, cwd=self.home)
        self.pid_path.write_text(f"{pid}\n")

    def after_start(self) -> None:
        populate()
        reset()  # toxics left by a killed run go

    def health(self) -> tuple[bool, str]:
        return http_health(f"{api_url()}/version")

    def version(self) -> str | None:
        # `go install` builds report "git": `make services` keeps the version beside it.
        try:
            stamp = Path(self.binary() + ".version")
            if stamp.is_file():
                return stamp.read_text().strip()
        except LabError:
            pass
        try:
            text = httpx.get(f"{api_url()}/version", timeout=1.0).text.strip()
        except httpx.TransportError:
            return None
        return text.strip('"') or None


SERVICE = Toxiproxy()
