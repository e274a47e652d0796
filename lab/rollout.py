"""A release scenario's deploy, during the load: the Fleet its procedure drives.

The run's app is the live release ("blue") behind nginx (lab/proxy.py). At the
procedure's `at_s` into the load, a thread runs `procedure.deploy(fleet)`: it
migrates the schema, starts the new release ("green") next to the live one,
switches nginx, stops a release, as the variant decides. Everything it does is
real and goes on the rollout's timeline (rollout.json).

Processes are started by the main thread: a child's PR_SET_PDEATHSIG follows the
thread that forked it (lab/processes.py), and the procedure's thread ends before
the run does. So `start` hands the spawn to the main thread's `tick` and waits.

After the run, `counts()` reads the proxy's access log against the timeline: the
failed requests (status >= 500) before the deploy, during the switch (from the
deploy's start to the switch, or to the gate's refusal), on the new release, and
during the rollback; audit.json holds them for the summary.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from faults._contract import Instance, Release, ReleaseProcedure, RolloutStopped
from lab.app_server import AppServer
from lab.processes import free_port
from lab.proxy import Nginx
from reports.formats import ProxyLine, ProxyLog

__all__ = ["ROLLOUT_FILE", "Rollout", "RunningRelease"]

log = logging.getLogger("lab.rollout")

ROLLOUT_FILE = "rollout.json"
STOP_JOIN_S = 30.0  # a procedure ends at its next wait; a migration may take a while


@dataclass
class RunningRelease:
    """One release's process: the Instance a procedure holds."""

    name: str
    server: AppServer
    release: Release | None = None  # None: the release that was live at the start

    @property
    def url(self) -> str:
        return self.server.config.base_url

    @property
    def address(self) -> str:  # as nginx logs its upstream
        return f"{self.server.config.host}:{self.server.config.port}"

    def alive(self) -> bool:
        return self.server.child is not None and self.server.child.alive()


@dataclass
class _Event:
    ts: float
    event: str
    detail: dict[str, Any] = field(default_factory=dict)


class Rollout:
    """The fleet behind one run's nginx, and the record of what the procedure did."""

    def __init__(
        self,
        procedure: ReleaseProcedure,
        blue: AppServer,
        proxy: Nginx,
        run_dir: Path,
        database_url: str,
    ) -> None:
        self.procedure = procedure
        self.proxy = proxy
        self.run_dir = run_dir
        self.database_url = database_url  # direct, for Alembic: no toxic in its way
        self.blue = RunningRelease("blue", blue)
        self.instances: list[RunningRelease] = [self.blue]
        self._live = self.blue
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._spawns: queue.Queue[tuple[RunningRelease, Future[None]]] = queue.Queue()
        self.events: list[_Event] = []
        self.thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.outcome: str | None = None
        self.error: str | None = None
        # nginx's log as read so far: the bake's checks and the counts read each line once.
        self._log = ProxyLog(proxy.access_log)
        self._log_offset = 0
        self._proxied: list[ProxyLine] = []

    # ----------------------------------------------------------------- main thread

    def tick(self, elapsed_s: float) -> None:
        """From the run's watch loop: start the deploy when it is due, spawn processes."""
        if self.thread is None and elapsed_s >= self.procedure.at_s:
            self.thread = threading.Thread(target=self._deploy, name="lab-rollout", daemon=True)
            self.thread.start()
        while True:
            try:
                instance, done = self._spawns.get_nowait()
            except queue.Empty:
                return
            try:
                instance.server.spawn()
                done.set_result(None)
            except Exception as exc:  # handed to the procedure, which started it
                done.set_exception(exc)

    def live_alive(self) -> bool:
        return self._live.alive()

    def live_pid(self) -> int | None:
        child = self._live.server.child
        return child.pid if child is not None and child.alive() else None

    def close(self) -> None:
        """The procedure told to end, then every release it started stopped (the live
        one at the start is the run's own app: the run stops it)."""
        self._stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=STOP_JOIN_S)
            if self.thread.is_alive():
                log.warning("the deploy procedure did not end within %.0f s", STOP_JOIN_S)
        for instance in self.instances[1:]:
            instance.server.stop()
        with contextlib.suppress(Exception):  # a database that is gone: the record says so
            self._note("schema at the end", revision=self.revision())
        self.write()

    # ----------------------------------------------------------------- the thread

    def _deploy(self) -> None:
        self.started_at = time.time()
        self._note("deploy started", release=self.procedure.release.name,
                   mistake=self.procedure.release.mistake)  # fmt: skip
        try:
            self.outcome = self.procedure.deploy(self)
        except RolloutStopped:
            self.outcome = "stopped"
        except Exception as exc:  # recorded: the run goes on, its report says what failed
            log.exception("the deploy procedure failed")
            self.outcome, self.error = "failed", f"{type(exc).__name__}: {exc}"
        self.ended_at = time.time()
        self._note("deploy ended", outcome=self.outcome, live=self._live.name)

    def _note(self, event: str, **detail: Any) -> None:
        with self._lock:
            self.events.append(_Event(time.time(), event, detail))

    # ----------------------------------------------------------------- Fleet

    @property
    def live(self) -> Instance:
        return self._live

    def revision(self) -> str:
        from target_app.migrate import current_revision

        return current_revision(self.database_url) or "base"

    def migrate(self, revision: str) -> None:
        from target_app.migrate import migrate_to

        self._note("migrating", before=self.revision(), to=revision)
        migrate_to(self.database_url, revision)
        self._note("migrated", revision=self.revision())

    def start(self, release: Release) -> Instance:
        self._check()
        config = copy.deepcopy(self.blue.server.config)
        config.port = free_port()
        config.env = {**config.env, **release.env(config.env)}
        name = "green" if self._live is self.blue else f"release-{len(self.instances)}"
        server = AppServer(config, self.run_dir / f"app-{name}.log", None)
        instance = RunningRelease(name, server, release)
        with self._lock:
            self.instances.append(instance)
        done: Future[None] = Future()
        self._spawns.put((instance, done))
        while True:  # the main thread's next tick, within half a second
            try:
                done.result(timeout=0.5)
                break
            except FutureTimeout:
                self._check()  # the load ended first: nobody ticks any more
        self._note("started", instance=name, release=release.name, port=config.port)
        return instance

    def switch(self, to: Instance) -> None:
        target = self._instance(to)
        self._note("switching", to=target.name)
        self.proxy.switch(target.server.config.port)
        self._live = target
        self._note("switched", to=target.name)

    def stop(self, instance: Instance) -> None:
        target = self._instance(instance)
        self._note("stopping", instance=target.name)
        target.server.stop()  # SIGTERM: uvicorn finishes the requests it holds
        self._note("stopped", instance=target.name)

    def _lines(self) -> list[ProxyLine]:
        """Every request nginx logged so far (the new lines read, the rest kept)."""
        with self._lock:
            new, self._log_offset = self._log.read_new(self._log_offset)
            self._proxied += new
            return list(self._proxied)

    def served(self, instance: Instance, since: float) -> tuple[int, int]:
        address = self._instance(instance).address
        lines = [x for x in self._lines() if x.upstream == address and x.ts >= since]
        return len(lines), sum(1 for x in lines if x.status >= 500)

    def wait(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise RolloutStopped

    def note(self, event: str, **detail: Any) -> None:
        self._note(event, **detail)

    def _check(self) -> None:
        if self._stopping.is_set():
            raise RolloutStopped

    def _instance(self, instance: Instance) -> RunningRelease:
        if not isinstance(instance, RunningRelease) or instance not in self.instances:
            raise ValueError(f"{instance!r} is not a release of this fleet")
        return instance

    # ----------------------------------------------------------------- the record

    def _times(self, event: str, **match: Any) -> list[float]:
        return [
            e.ts
            for e in self.events
            if e.event == event and all(e.detail.get(k) == v for k, v in match.items())
        ]

    def counts(self) -> dict[str, int | float]:
        """Failed requests (status >= 500, as nginx logged them) in each part of the
        rollout, and what it came to; audit.json holds them for the summary."""
        never = float("inf")  # a step that did not happen: its phase is empty
        lines = self._lines()
        failed = [x.ts for x in lines if x.status >= 500]
        start = self.started_at or never
        switched_in = min((t for t in self._times("switched") if t >= start), default=never)
        rollback_from = min(self._times("rolling back"), default=never)
        switch_end = min(switched_in, self.ended_at or never)

        def between(lo: float, hi: float) -> int:
            return sum(1 for ts in failed if lo <= ts < hi)

        new = {i.address for i in self.instances[1:]}
        counts: dict[str, int | float] = {
            "requests_proxied": len(lines),
            "failed_requests": len(failed),
            "failed_before_deploy": between(-never, start),
            "failed_during_switch": between(start, switch_end),
            "failed_on_new_release": between(switched_in, rollback_from),
            "failed_during_rollback": between(rollback_from, never),
            "requests_to_new_release": sum(1 for x in lines if x.upstream in new),
            "rolled_back": int(rollback_from < never and bool(self._times("switched", to="blue"))),
            "new_release_live": int(self._live is not self.blue),
        }
        with contextlib.suppress(ValueError, TypeError):
            revision = next(e.detail["revision"] for e in reversed(self.events)
                            if e.event == "schema at the end")  # fmt: skip
            counts["schema_revision"] = int(revision)
        return counts

    def as_dict(self) -> dict[str, Any]:
        t0 = self.events[0].ts if self.events else 0.0
        return {
            "format": 1,
            "procedure": type(self.procedure).__name__,
            "release": {
                "name": self.procedure.release.name,
                "revision": self.procedure.release.revision,
                "mistake": self.procedure.release.mistake,
            },
            "at_s": self.procedure.at_s,
            "outcome": self.outcome,
            "error": self.error,
            "live_at_end": self._live.name,
            "timeline": [
                {"t": round(e.ts - t0, 3), "ts": e.ts, "event": e.event, **e.detail}
                for e in self.events
            ],
            "counts": self.counts(),
        }

    def write(self) -> Path:
        path = self.run_dir / ROLLOUT_FILE
        path.write_bytes(orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        return path
