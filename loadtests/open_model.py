"""The open load model: requests sent on a schedule, whatever the responses.

A Locust user waits for each response before it sends again (a closed model):
when the app stalls, the load drops with it, and the requests that would have
been sent during the stall are never measured (coordinated omission). With
LAB_RATE set (total requests per second over all Locust processes), every
workload runs open instead, by one mechanism applied to its user classes
(`open_user_class`, used by `loadtests.workloads.user_classes`):

- The process's `Schedule` (loadtests/schedule.py) holds the intended send
  times: slots on the epoch grid, j / LAB_RATE for integer j. With
  LAB_LOAD_PROCESSES=N the process with Locust worker index p takes the slots
  j = p (mod N), so the N processes interleave their slots on one grid, each
  offering LAB_RATE / N, with no clock to share but the machine's.
- A free user takes the next slot, sleeps until it (a gevent sleep, inside
  Locust's wait, so a stopping run ends it at once), and runs one task. The
  number of users caps the requests in flight: when every user is busy at a
  slot's time, the slot is taken late, by the first user to come free, and
  the lateness is in that request's latency measured from its slot.
- The slot goes to the request event's `context` under request_log.INTENDED
  (Locust merges `User.context()` into it per request, just before the send:
  FastHttpSession.request and HttpSession.request in locust 2.47, so the
  value is read once per request). Only the task's first request is the
  scheduled one. A later request of the same task (a poll after a payment,
  the next page) is sent when the task chooses, after a response, so it has
  no intended time but its own start: its context holds INTENDED = None, and
  requests.csv writes its `intended` equal to its `start`. What the schedule
  governs is when tasks begin; a follow-up's wait on the previous response
  is the task's work, not the load tool's lateness.

Closed-model runs (LAB_RATE unset or empty) do not touch any of this.
A shape still sets the number of users (the cap on in-flight requests); the
rate is the same for the whole run. LAB_WAIT (think time) means nothing here:
the schedule is the pacing.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import User, events
from locust.runners import MasterRunner, Runner, WorkerRunner

from loadtests.request_log import INTENDED
from loadtests.schedule import Schedule, processes_from_env, rate_from_env

__all__ = ["OpenModelUser", "install", "open_user_class"]


class _Process:
    """This process's schedule, set when Locust's runner exists (its worker index)."""

    schedule: Schedule | None = None


def install() -> None:
    """Set up this process's schedule at Locust's `init` (after the fork of --processes)."""
    rate = rate_from_env()
    if rate is None:
        return

    @events.init.add_listener
    def _schedule(environment: Any, runner: Runner | None = None, **_: Any) -> None:
        if isinstance(runner, MasterRunner):
            return  # the master runs no users
        if isinstance(runner, WorkerRunner):
            processes = processes_from_env()
            if runner.worker_index < 0:
                raise RuntimeError("the Locust master gave this worker no index (master <= 2.10.2)")
            _Process.schedule = Schedule(rate, runner.worker_index, processes)
        else:
            # A local runner is alone whatever LAB_LOAD_PROCESSES says: it offers the whole rate.
            _Process.schedule = Schedule(rate)


class OpenModelUser(User):
    """Runs its user class's tasks on the process's schedule (see the module's docstring)."""

    abstract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot: float | None = None  # taken, and not yet given to a request
        self._waiting = False  # asleep until self._slot

    def on_start(self) -> None:
        super().on_start()
        # Locust runs a user's first task without a wait: this makes it wait for a slot too.
        self.wait()

    def wait_time(self) -> float:
        schedule = _Process.schedule
        if schedule is None:
            raise RuntimeError(
                "LAB_RATE is set but no schedule exists: open_model.install() was not called"
            )
        # A slot a task did not send on (it sent nothing) is spent all the same:
        # the schedule says when tasks begin.
        self._slot = schedule.take()
        # Sleep here rather than return the delay: Locust sleeps once, and a timer
        # that wakes early would send before the slot. Locust's wait() has marked
        # the user as waiting, so a stop kills this sleep at once.
        self._waiting = True
        while (remaining := self._slot - time.time()) > 0:
            gevent.sleep(remaining)
        self._waiting = False
        return 0.0

    def context(self) -> dict[str, Any]:
        slot, self._slot = self._slot, None
        return {**super().context(), INTENDED: slot}

    def on_stop(self) -> None:
        if self._waiting and self._slot is not None and _Process.schedule is not None:
            # Stopped while waiting: the slot's task never began, another user takes it.
            _Process.schedule.give_back(self._slot)
            self._slot, self._waiting = None, False
        super().on_stop()


def open_user_class(cls: type[User]) -> type[User]:
    """`cls` on the open model: same name, same tasks, paced by the schedule."""
    return type(cls.__name__, (OpenModelUser, cls), {"__module__": cls.__module__})
