"""The undo stack of a run (and of `lab serve`): reverse order, guarded steps, no second Ctrl-C."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from typing import Any

import pytest

from lab.undo import (
    UndoStack,
    guarded,
    raise_if_interrupted,
    signals_as_interrupt,
    uninterruptible,
)

pytestmark = pytest.mark.unit


def test_steps_are_undone_in_reverse_order_of_acquisition() -> None:
    done: list[str] = []
    with UndoStack() as undo:
        for name in ("toggles", "app", "profiler", "locust"):
            undo.push(f"undo {name}", functools.partial(done.append, name))
    assert done == ["locust", "profiler", "app", "toggles"]
    assert undo.errors == []


def test_a_failing_step_is_recorded_and_the_others_still_run() -> None:
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("proxy API down")

    undo = UndoStack()
    undo.push("stop app", lambda: done.append("app"))
    undo.push("remove toxics", broken)
    undo.push("stop Locust", lambda: done.append("locust"))
    undo.close()
    assert done == ["locust", "app"]
    assert undo.errors == ["remove toxics: proxy API down"]


def test_close_is_idempotent_and_runs_only_what_was_pushed() -> None:
    done: list[str] = []
    undo = UndoStack()
    undo.close()  # nothing acquired: nothing to undo
    undo.push("stop app", lambda: done.append("app"))
    undo.close()
    undo.close()
    assert done == ["app"]


def test_the_stack_unwinds_on_an_exception_and_lets_it_through() -> None:
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt), UndoStack() as undo:
        undo.push("stop app", lambda: done.append("app"))
        raise KeyboardInterrupt
    assert done == ["app"]


def test_a_second_ctrl_c_or_sigterm_during_the_undo_does_not_cut_it_short() -> None:
    done: list[str] = []
    undo = UndoStack()
    undo.push("reset toggles", lambda: done.append("toggles"))
    undo.push("stop app", lambda: done.append("app"))
    undo.push("impatient user", lambda: os.kill(os.getpid(), signal.SIGINT))
    undo.push("kill <lab>", lambda: os.kill(os.getpid(), signal.SIGTERM))
    sigint = signal.getsignal(signal.SIGINT)
    with signals_as_interrupt():
        undo.close()  # would raise KeyboardInterrupt (or die by SIGTERM) if not ignored
        sigterm = signal.getsignal(signal.SIGTERM)
    assert done == ["app", "toggles"]
    assert undo.errors == []
    # and the handlers are back: Ctrl-C and SIGTERM interrupt again after the clean-up
    assert signal.getsignal(signal.SIGINT) == sigint
    assert sigterm not in (signal.SIG_IGN, signal.SIG_DFL)


def test_sigterm_is_a_keyboard_interrupt_inside_and_its_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), signals_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler's KeyboardInterrupt ends it at once
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_stop_signal_whose_raise_a_finaliser_swallowed_is_still_noticed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What CI saw: SIGTERM arrived while a GC pass ran SQLAlchemy's weakref callback;
    # Python printed "Exception ignored" and `lab serve` kept waiting on its app.
    swallowed: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)

    class Finalised:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)  # the handler runs here, inside __del__

    with signals_as_interrupt():
        Finalised()  # dropped at once; its __del__'s KeyboardInterrupt goes nowhere
        assert [type(u.exc_value) for u in swallowed] == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    with signals_as_interrupt():  # a new command starts with no stop pending
        raise_if_interrupted()


def test_ctrl_c_is_recorded_the_same_way() -> None:
    with signals_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()


def test_uninterruptible_restores_both_handlers() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with uninterruptible():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_guarded_reports_success() -> None:
    errors: list[str] = []
    assert guarded("fine", errors, lambda: None)
    assert not guarded("broken", errors, lambda: 1 / 0)
    assert errors == ["broken: division by zero"]
