"""Undo what a command did, whatever stops it: success, a failure, Ctrl-C or SIGTERM.

A command pushes the undo of each resource the moment it acquires it (just
before, when the acquisition itself can be cut short half-way, such as a
child that is started and then awaited), onto one `UndoStack`:

    with signals_as_interrupt(), UndoStack() as undo:
        undo.push("reset toggles", store.reset)
        store.enable(...)
        undo.push("stop app", app.stop)
        app.start(...)

Closing the stack undoes exactly what was done, in reverse order. Each step is
guarded, so one that fails is logged and recorded and the others still run;
and while the stack closes SIGINT and SIGTERM are ignored, so that a second
Ctrl-C cannot cut the undo short and leave orphans behind.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Self

__all__ = [
    "UndoStack",
    "guarded",
    "raise_if_interrupted",
    "signals_as_interrupt",
    "uninterruptible",
]

log = logging.getLogger("lab.undo")


def guarded(step: str, errors: list[str], action: Callable[[], object]) -> bool:
    """Run one clean-up step; a failure is logged and appended to `errors`, not raised."""
    try:
        action()
    except Exception as exc:  # the other steps must still run; the failure is recorded
        log.exception("clean-up step %s failed", step)
        errors.append(f"{step}: {exc}")
        return False
    return True


# The signal that asked this command to stop, if one did. A KeyboardInterrupt raised by a
# signal handler is lost when the handler happens to run inside a weakref callback or a
# __del__ (a GC pass, e.g. SQLAlchemy's event registry): Python prints "Exception ignored"
# and carries on. CI saw `lab serve` keep waiting on its app after SIGTERM that way. So
# the handler also records the signal, and every loop that waits for long checks it.
_requested: list[int] = []


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C (SIGINT) and `kill <lab>` (SIGTERM) both raise KeyboardInterrupt: one undo.

    Python's default for SIGTERM is to die at once, leaving children and toggles
    behind. Installed from the main thread only (Python's rule for signal handlers).
    A command that waits for long calls `raise_if_interrupted()` in its loop.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        _requested.append(signum)
        raise KeyboardInterrupt

    _requested.clear()
    previous_int = signal.signal(signal.SIGINT, handler)
    previous_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def raise_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a stop signal whose own raise was swallowed."""
    if _requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """A second Ctrl-C (or SIGTERM) must not cut the clean-up short and leave orphans."""
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


class UndoStack:
    """Undo steps, pushed as resources are acquired and run in reverse by `close()`.

    A `contextlib.ExitStack` of guarded callbacks: `errors` collects "step: error"
    of the steps that failed. `close()` is idempotent (the stack empties as it runs).
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.errors: list[str] = []

    def push(self, step: str, action: Callable[[], object]) -> None:
        self._stack.callback(guarded, step, self.errors, action)

    def close(self) -> None:
        with uninterruptible():
            self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
