"""Where the on/off state of the faults lives: outside any one process.

gunicorn runs several workers, and a toggle must reach all of them within a
second, so the state cannot be a module global. It is a small JSON file,
replaced atomically on every change; each worker re-reads it when its mtime
changes, checking at most every `poll_interval` seconds so the hot path costs
one `os.stat` a few times a second, not one per request.

The file maps each slug that is switched (or tuned) to its variant and parameters:

    {"version": 3, "active": {"memory-leak": {"params": {"entry_kb": 8}, "since": 1764059000.1}}}

An entry is the faulty variant with those parameters, unless it says
`"variant": "fixed"`: then the fault is off and the fixed variant runs with
those parameters (`lab run SLUG --fixed --param ...`: a breaker's threshold,
a pool's size). A slug that is absent is off: the fixed variant, with its
defaults. Entries written before `variant` existed are faulty, as they meant.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faults._contract import Variant

__all__ = ["ToggleState", "ToggleStore", "entry_variant"]

ToggleState = dict[str, dict[str, Any]]


def entry_variant(entry: dict[str, Any]) -> Variant:
    """The variant an entry of the file switches to (faulty unless it says fixed)."""
    return "fixed" if entry.get("variant") == "fixed" else "faulty"


class ToggleStore:
    def __init__(self, path: str | os.PathLike[str], poll_interval: float = 0.2) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._cached: ToggleState = {}
        # (mtime, inode): every write replaces the file, so a new inode shows a
        # change even when two writes land in one tick of a coarse clock.
        self._cached_mtime: tuple[int, int] | None = None
        self._next_check = 0.0

    # -- reading (hot path) -------------------------------------------------

    def active(self) -> ToggleState:
        """The active faults, at most `poll_interval` seconds old."""
        if time.monotonic() < self._next_check:
            return self._cached
        with self._lock:
            # Another thread may have looked while this one waited for the lock.
            if time.monotonic() < self._next_check:
                return self._cached
            self._refresh()
            # Only now, the look done: were the next check pushed forward before the
            # file was read, another thread would take the old state for a fresh one
            # until the look ended (seen in CI: a toggle written and read back by one
            # client answered as if never written, while the app's own metrics task
            # was looking).
            self._next_check = time.monotonic() + self.poll_interval
        return self._cached

    def _refresh(self) -> None:
        """The cache made current from the file, under `_lock`."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._cached_mtime is not None:  # keep the same empty state object
                self._cached, self._cached_mtime = {}, None
            return
        key = (stat.st_mtime_ns, stat.st_ino)
        if key != self._cached_mtime:
            self._cached = self._read()
            self._cached_mtime = key

    def _read(self) -> ToggleState:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        active = data.get("active", {})
        return active if isinstance(active, dict) else {}

    # -- writing (admin API, lab runner) -------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[ToggleState]:
        """Read-modify-write under an flock, so two writers never lose an update."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(self.path.suffix + ".lock")
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                state = self._read()
                yield state
                key = self._write(state)
                # What was written is what this process reads next, at once: the
                # file cannot change under the flock, and a look in progress in
                # another thread finishes before this (both hold `_lock`).
                with self._lock:
                    self._cached, self._cached_mtime = state, key
                    self._next_check = time.monotonic() + self.poll_interval
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _write(self, state: ToggleState) -> tuple[int, int]:
        """`state` as the new file; its cache key (mtime, inode)."""
        payload = {"version": time.time_ns(), "active": state}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".toggles-")
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, sort_keys=True)
        # Every file gets an mtime later than the one it replaces, so no two files
        # share a reader's cache key (mtime, inode). The file clock is coarse (a
        # kernel tick: two writes can land in one) and a replaced file's inode is
        # reused, so without this a reader that stat()ed one file and read the next
        # could keep that content under a key a later file repeats: a toggle that
        # never reaches it (seen in CI, in every process that reads the file).
        # The writers hold the flock here, so the order is theirs.
        try:
            previous = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            previous = 0
        mtime = max(time.time_ns(), previous + 1)
        os.utime(tmp, ns=(mtime, mtime))
        written = Path(tmp).stat()  # a rename keeps the inode and its mtime
        Path(tmp).replace(self.path)
        return written.st_mtime_ns, written.st_ino

    def enable(self, slug: str, params: dict[str, Any], variant: Variant = "faulty") -> None:
        """`slug`'s faulty variant on with `params`; with `variant="fixed"`, the fault
        off and the fixed variant on with `params`."""
        entry: dict[str, Any] = {"params": params, "since": time.time()}
        if variant == "fixed":
            entry["variant"] = "fixed"
        with self._exclusive() as state:
            state[slug] = entry

    def faulty(self) -> ToggleState:
        """The entries that switch a fault on (not those that tune a fixed variant)."""
        return {slug: e for slug, e in self.active().items() if entry_variant(e) == "faulty"}

    def disable(self, slug: str) -> bool:
        with self._exclusive() as state:
            return state.pop(slug, None) is not None

    def reset(self) -> list[str]:
        with self._exclusive() as state:
            was = sorted(state)
            state.clear()
        return was

    def discard(self) -> None:
        """Every fault off, then the file and its lock gone: the end of a run's store.

        Reset first: an app that could not be stopped keeps serving, and then
        it serves the fixed code.
        """
        self.reset()
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(self.path.suffix + ".lock").unlink(missing_ok=True)
