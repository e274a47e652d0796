"""PostgreSQL 15 with pg_stat_statements, database `shop`, trust auth for user `lab`.

PostgreSQL refuses to run as root: when the lab runs as root, initdb and pg_ctl
run as the `postgres` system user (`runuser -u postgres --`), which owns
`lab_home()/postgres/`. That user must be able to reach the directory, so a
LAB_HOME below a private directory (mode 700, such as pytest's
/tmp/pytest-of-root) is refused before anything starts, with the fix.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from lab.errors import LabError
from lab.services._base import HOST, Service, terminate_tree
from lab.topology import LINKS, POSTGRES_DB, POSTGRES_USER

__all__ = ["SERVICE", "Postgres", "direct_url"]

OS_USER = "postgres"
_SOCKET_MAX = 100  # sun_path is 108 bytes, with "/.s.PGSQL.<port>" in it


def direct_url(database: str = POSTGRES_DB) -> str:
    """SQLAlchemy URL of the real server, not through Toxiproxy: for set-up work."""
    return f"postgresql+psycopg://{POSTGRES_USER}@{LINKS['postgres'].direct}/{database}"


def _conninfo(database: str) -> str:
    port = LINKS["postgres"].direct_port
    return f"host={HOST} port={port} user={POSTGRES_USER} dbname={database} connect_timeout=2"


def _as_root() -> bool:
    return os.geteuid() == 0


def _blocked_ancestor(path: Path, user: str) -> Path | None:
    """The first existing directory on the way to `path` that `user` cannot enter."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return None  # the lab creates the rest, mode 755
        if st.st_uid == entry.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return directory
    return None


class Postgres(Service):
    name = "postgres"
    rank = 10
    requires = ("toxiproxy",)
    binary_name = "initdb"
    install_hint = "`make services` (or `apt-get install -y postgresql`)"
    process_names = ("postgres",)
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return LINKS["postgres"].direct_port

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def pid_path(self) -> Path:
        return self.data / "postmaster.pid"  # the server's own: its first line is the pid

    def binary_candidates(self) -> list[str | None]:
        # initdb and pg_ctl are not on PATH on Debian: pg_config knows where they are.
        found: list[str | None] = []
        pg_config = shutil.which("pg_config")
        if pg_config:
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=False
            )
            if result.returncode == 0:
                found.append(str(Path(result.stdout.strip()) / "initdb"))
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"),
            key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
            reverse=True,
        )
        return [*found, *map(str, versions), *super().binary_candidates()]

    def _tool(self, name: str) -> str:
        return str(Path(self.binary()).with_name(name))

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", OS_USER, "--", *command] if _as_root() else command

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(
            self._as_owner(command), cwd=self.home, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise LabError(f"{what} failed (see {self.log_path}): {output}")

    def preflight(self) -> None:
        super().preflight()
        if _as_root():
            try:
                pwd.getpwnam(OS_USER)
            except KeyError:
                raise LabError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user to run "
                    "it: install the postgresql package (it creates one) or run the lab as a "
                    "normal user"
                ) from None
            blocked = _blocked_ancestor(self.home, OS_USER)
            if blocked is not None:
                mode = stat.S_IMODE(blocked.stat().st_mode)
                raise LabError(
                    f"PostgreSQL runs as the '{OS_USER}' user, which cannot enter {blocked} "
                    f"(mode {mode:o}) on the way to {self.home}: set LAB_HOME to a directory "
                    f"it can reach (e.g. LAB_HOME=/var/tmp/lab) or `chmod o+x {blocked}`"
                )
        socket_path = self.data / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > _SOCKET_MAX:
            raise LabError(
                f"PostgreSQL's socket path {socket_path} is too long for a Unix socket: "
                "use a shorter LAB_HOME"
            )

    def launch(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._own(self.home)
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(mode=0o700, exist_ok=True)
            self._own(self.data)
            self._run(
                [self._tool("initdb"), "-D", str(self.data), "-A", "trust", "-U", POSTGRES_USER,
                 "-E", "UTF8", "--locale=C", "--no-sync"],
                "initdb",
            )  # fmt: skip
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# Written by `lab up` at every start.\ninclude_if_exists = 'lab.conf'\n"
                )
        lab_conf = self.data / "lab.conf"
        lab_conf.write_text(
            f"listen_addresses = '{HOST}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.data}'\n"
            "shared_preload_libraries = 'pg_stat_statements'\n"
            "pg_stat_statements.track = all\n"
            "max_connections = 200\n"
            # No replicas here: COPY into a table truncated in the same transaction
            # then writes no WAL, which makes the seed a third faster.
            "wal_level = minimal\n"
            "max_wal_senders = 0\n"
            "log_line_prefix = '%m [%p] %u@%d '\n"
        )
        self._own(lab_conf)
        if self.log_path.exists():
            self._own(self.log_path)
        self._run(
            [self._tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
             "-w", "-t", str(int(self.start_timeout)), "start"],
            "pg_ctl start",
        )  # fmt: skip

    @staticmethod
    def _own(path: Path) -> None:
        if _as_root():
            entry = pwd.getpwnam(OS_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def after_start(self) -> None:
        """Database `shop` and pg_stat_statements in it, on every `lab up`."""
        import psycopg

        try:
            with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,)
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{POSTGRES_DB}"')
            with psycopg.connect(_conninfo(POSTGRES_DB), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        except psycopg.Error as exc:
            raise LabError(
                f"PostgreSQL is up but preparing '{POSTGRES_DB}' failed: {exc}"
            ) from None

    def stop(self, timeout: float = 30.0) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(LabError):  # if pg_ctl cannot, the signals below do
            self._run(
                [self._tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                 "-t", str(int(timeout)), "stop"],
                "pg_ctl stop",
            )  # fmt: skip
        terminate_tree(pid, timeout=5)
        return True

    def health(self) -> tuple[bool, str]:
        import psycopg

        try:
            with psycopg.connect(_conninfo("postgres")) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return False, f"no answer ({str(exc).strip().splitlines()[0][:80]})"
        return True, "ok"

    def version(self) -> str | None:
        import psycopg

        try:
            with psycopg.connect(_conninfo("postgres")) as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error:
            return None
        return str(row[0]).split()[0] if row else None


SERVICE = Postgres()
