"""Redis: an in-memory cache with nothing saved to disk (`--save ""`, no AOF)."""

from __future__ import annotations

import socket
import subprocess

from lab.errors import LabError
from lab.services._base import HOST, Service
from lab.topology import LINKS

__all__ = ["SERVICE", "Redis", "redis_command"]


def redis_command(port: int, *args: str, timeout: float = 1.0) -> str:
    """One command over RESP; the reply as text (a status line or a bulk string)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(payload.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n")
        if not head.startswith(b"$"):
            return head.decode(errors="replace")  # +PONG, -ERR ...
        size = int(head[1:])
        while len(rest) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return rest[:size].decode(errors="replace")


class Redis(Service):
    name = "redis"
    rank = 20
    requires = ("toxiproxy",)
    binary_name = "redis-server"
    install_hint = "`make services` (or `apt-get install -y redis-server`)"
    process_names = ("redis-server",)

    @property
    def port(self) -> int:
        return LINKS["redis"].direct_port

    def launch(self) -> None:
        command = [
            self.binary(),
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--pidfile", str(self.pid_path),
            "--logfile", str(self.log_path),
            "--dir", str(self.home),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LabError(f"redis-server did not start: {result.stderr.strip() or result.stdout}")

    def health(self) -> tuple[bool, str]:
        try:
            reply = redis_command(self.port, "PING")
        except OSError as exc:
            return False, f"no answer ({exc.strerror or exc})"
        return (True, "ok") if reply == "+PONG" else (False, reply)

    def version(self) -> str | None:
        try:
            info = redis_command(self.port, "INFO", "server")
        except OSError:
            return None
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return None


SERVICE = Redis()
