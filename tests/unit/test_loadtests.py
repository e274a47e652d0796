"""Workloads and shapes. Locust is imported in a child process: it monkey-patches with gevent."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadtests import SHAPE_NAMES
from loadtests.request_log import COLUMNS, INTENDED, RequestLog, merge_parts, part_path
from loadtests.schedule import Schedule
from loadtests.workloads import available

pytestmark = pytest.mark.unit

_PROBE = """
import os, json, importlib
os.environ.update(LAB_USERS="10", LAB_SPAWN_RATE="5", LAB_DURATION="10")
from loadtests.shapes import SHAPES
from loadtests.workloads import available, user_classes
workloads = {w: [c.__name__ for c in user_classes(w)] for w in available()}
own = all(user_classes(w) == list(importlib.import_module(f"loadtests.workloads.{w}").USERS)
          for w in available())
out = {"shapes": sorted(SHAPES), "workloads": workloads, "closed_classes_are_own": own}
ticks = {}
for name, cls in SHAPES.items():
    shape = cls()
    series = []
    for t in (0, 1, 4.5, 5, 9.9, 10, 11):
        shape.get_run_time = lambda t=t: t
        series.append(shape.tick())
    ticks[name] = series
out["ticks"] = ticks
out["log_writers"] = importlib.import_module("loadtests.workloads.log_tail").WRITERS_PER_TRANSPORT
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k != "LAB_RATE"}  # the closed model
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_shape_names_match_the_shape_classes(probe: dict) -> None:
    assert probe["shapes"] == sorted(SHAPE_NAMES)


def test_the_log_bench_counts_the_writers_the_workload_has(probe: dict) -> None:
    from lab.bench.log_transports import WRITERS  # a copy: the workload imports gevent

    assert probe["log_writers"] == WRITERS


def test_every_workload_has_user_classes(probe: dict) -> None:
    assert set(probe["workloads"]) == set(available())
    assert all(probe["workloads"].values())


def test_shapes_stop_by_themselves_at_the_duration(probe: dict) -> None:
    for name, series in probe["ticks"].items():
        assert series[-2] is None and series[-1] is None, name  # at and after 10 s
        assert all(tick is not None for tick in series[:-2]), name


def test_step_climbs_and_spike_peaks_in_the_middle(probe: dict) -> None:
    step = [tick[0] for tick in probe["ticks"]["step"][:-2]]
    assert step == sorted(step) and step[0] == 2 and step[-1] == 10
    spike = [tick[0] for tick in probe["ticks"]["spike"][:-2]]
    assert spike[0] == 2 and spike[3] == 10 and spike[4] == 2  # t=5 in the spike, t=9.9 after


# --- the open model (loadtests/schedule.py, open_model.py, request_log.py) ---


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_schedule_slots_are_one_interval_apart_from_the_first_at_or_after_now() -> None:
    schedule = Schedule(20.0, clock=_Clock(1000.012))
    slots = [schedule.take() for _ in range(5)]
    assert slots == pytest.approx([1000.05, 1000.1, 1000.15, 1000.2, 1000.25])


def test_schedule_does_not_wait_for_the_clock_a_late_slot_stays_its_time() -> None:
    clock = _Clock(50.0)
    schedule = Schedule(10.0, clock=clock)
    first = schedule.take()
    clock.now += 3.0  # every user was busy for 3 s: the next slots are in the past
    assert [schedule.take() - first for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_processes_interleave_their_slots_on_one_grid_each_at_its_share() -> None:
    clock = _Clock(7.0031)
    schedules = [Schedule(30.0, index, 3, clock=clock) for index in range(3)]
    per_process = [[s.take() for _ in range(10)] for s in schedules]
    merged = sorted(t for slots in per_process for t in slots)
    # Together: the whole grid at 30/s, no slot twice, none missing.
    assert np.diff(merged) == pytest.approx(np.full(29, 1 / 30))
    for index, slots in enumerate(per_process):
        assert np.diff(slots) == pytest.approx(np.full(9, 3 / 30))  # each at 10/s
        assert round(slots[0] * 30) % 3 == index


def test_a_slot_given_back_is_taken_again_before_later_ones() -> None:
    schedule = Schedule(10.0, clock=_Clock(0.0))
    first, second = schedule.take(), schedule.take()
    schedule.give_back(first)
    assert schedule.take() == first
    assert schedule.take() == pytest.approx(second + 0.1)


def test_schedule_refuses_an_index_outside_its_processes() -> None:
    with pytest.raises(ValueError):
        Schedule(10.0, index=2, processes=2)
    with pytest.raises(ValueError):
        Schedule(0.0)


def _log_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_request_log_intended_column_closed_open_and_follow_up(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.csv")
    common = {"request_type": "GET", "response_time": 12.5, "response_length": 2}
    log.on_request(name="/closed", start_time=10.0, context={}, **common)
    log.on_request(name="/first", start_time=10.25, context={INTENDED: 10.1}, **common)
    log.on_request(name="/follow", start_time=10.3, context={INTENDED: None}, **common)
    log.close()
    rows = _log_rows(tmp_path / "requests.csv")
    assert tuple(rows[0]) == COLUMNS and COLUMNS[:5] == ("start", "name", "ms", "bytes", "ok")
    assert [row["intended"] for row in rows] == ["", "10.1000", "10.3000"]
    late = rows[1]
    assert (float(late["start"]) - float(late["intended"])) * 1000 + float(late["ms"]) == (
        pytest.approx(162.5)
    )


def test_merge_parts_sorts_by_start_and_removes_the_parts(tmp_path: Path) -> None:
    header = ",".join(COLUMNS)
    (tmp_path / "requests.part0.csv").write_text(
        f"{header}\n3.0,GET /a,1.0,2,1,2.9\n1.0,GET /a,1.0,2,1,1.0\n"
    )
    # A worker killed mid-write: its last line is cut short, here inside its last
    # field (all six columns there, `intended` wrong), and is dropped whole.
    (tmp_path / "requests.part1.csv").write_text(
        f"{header}\n2.0,GET /b,1.5,2,0,1.9\n4.0,GET /b,1.5,2,1,3."
    )
    assert merge_parts(tmp_path) == 3
    assert not list(tmp_path.glob("requests.part*.csv"))
    rows = _log_rows(tmp_path / "requests.csv")
    assert [row["start"] for row in rows] == ["1.0", "2.0", "3.0"]
    assert rows[1]["intended"] == "1.9"


def test_merge_parts_without_parts_leaves_requests_csv_alone(tmp_path: Path) -> None:
    (tmp_path / "requests.csv").write_text("start,name,ms,bytes,ok,intended\n")
    assert merge_parts(tmp_path) == 0
    assert (tmp_path / "requests.csv").read_text() == "start,name,ms,bytes,ok,intended\n"


def test_merge_parts_merges_a_workloads_own_log_by_its_name(tmp_path: Path) -> None:
    # checkouts.csv (loadtests/workloads/checkout.py): per worker in a distributed run too.
    header = "start,order_id,step,status,outcome,polls,seconds"
    (tmp_path / "checkouts.part0.csv").write_text(f"{header}\n2.0,7,pay,202,,0,0.1\n")
    (tmp_path / "checkouts.part1.csv").write_text(f"{header}\n1.0,8,pay,200,paid,0,0.2\n")
    (tmp_path / "requests.part0.csv").write_text(",".join(COLUMNS) + "\n")
    assert merge_parts(tmp_path, "checkouts.csv", columns=None) == 2
    merged = (tmp_path / "checkouts.csv").read_text().splitlines()
    assert merged == [header, "1.0,8,pay,200,paid,0,0.2", "2.0,7,pay,202,,0,0.1"]
    assert (tmp_path / "requests.part0.csv").exists()  # another log's part: not touched
    (tmp_path / "checkouts.part2.csv").write_text("start,other\n3.0,x\n")
    (tmp_path / "checkouts.part3.csv").write_text(f"{header}\n")
    with pytest.raises(ValueError, match="has columns"):
        merge_parts(tmp_path, "checkouts.csv", columns=None)


def test_merge_parts_of_workers_killed_before_their_first_flush(tmp_path: Path) -> None:
    # A run stopped as it started: the workers' parts are empty files (no header yet).
    (tmp_path / "requests.part0.csv").write_text("")
    (tmp_path / "requests.part1.csv").write_text("")
    (tmp_path / "checkouts.part0.csv").write_text("")
    assert merge_parts(tmp_path) == 0
    assert (tmp_path / "requests.csv").read_text().splitlines() == [",".join(COLUMNS)]
    assert merge_parts(tmp_path, "checkouts.csv", columns=None) == 0
    assert not (tmp_path / "checkouts.csv").exists()
    assert not list(tmp_path.glob("*.part*.csv"))


def test_part_path_is_beside_the_request_log() -> None:
    assert part_path(Path("/run/requests.csv"), 3) == Path("/run/requests.part3.csv")


# A real Locust user on the open model against a gevent server: its first task
# stalls 0.2 s with one user and two requests; the slots due meanwhile are taken
# late by the same user (the cap on in-flight requests is 1) and keep their times.
_OPEN_PROBE = """
import json, os, sys
os.environ["LAB_RATE"] = "20"
import gevent
from gevent import pywsgi
from locust import FastHttpUser, events, task
from locust.env import Environment
from loadtests import open_model
from loadtests.request_log import RequestLog
from loadtests.workloads import user_classes

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        gevent.sleep(0.2)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]

server = pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()

class Probe(FastHttpUser):
    host = f"http://127.0.0.1:{server.server_port}"
    tasks_run = 0

    @task
    def visit(self):
        Probe.tasks_run += 1
        if Probe.tasks_run == 1:
            self.client.get("/slow")
            self.client.get("/follow")
        else:
            self.client.get("/fast")

cls = open_model.open_user_class(Probe)
open_model.install()
env = Environment(user_classes=[cls], events=events)
runner = env.create_local_runner()
events.init.fire(environment=env, runner=runner, web_ui=None)
log = RequestLog(__import__("pathlib").Path(sys.argv[1]))
events.request.add_listener(log.on_request)
runner.start(1, spawn_rate=1)
gevent.sleep(0.6)
runner.quit()
log.close()
shop = user_classes("shop")[0]
print(json.dumps({"mro": [c.__name__ for c in cls.__mro__[:3]], "shop": shop.__name__,
                  "shop_open": issubclass(shop, open_model.OpenModelUser)}))
"""


@pytest.fixture(scope="module")
def open_probe(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, str]], dict]:
    import json

    path = tmp_path_factory.mktemp("open") / "requests.csv"
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_PROBE, str(path)], capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    return _log_rows(path), json.loads(done.stdout.strip().splitlines()[-1])


def test_open_user_sends_on_slots_and_records_the_lateness(
    open_probe: tuple[list[dict[str, str]], dict],
) -> None:
    rows, _ = open_probe
    names = [row["name"] for row in rows]
    assert names[:3] == ["GET /slow", "GET /follow", "GET /fast"], names
    start = [float(row["start"]) for row in rows]
    intended = [float(row["intended"]) for row in rows]
    assert 0 <= start[0] - intended[0] < 0.05  # the first slot, on time
    assert rows[1]["intended"] == rows[1]["start"]  # a follow-up: sent when the task chose
    # The slots due during the stall: taken late, one interval apart, lateness recorded.
    fast = [
        (s, i)
        for row, s, i in zip(rows, start, intended, strict=True)
        if row["name"] == "GET /fast"
    ]
    slots = [i for _, i in fast]
    assert np.diff(slots) == pytest.approx(np.full(len(slots) - 1, 0.05), abs=2e-4)
    assert slots[0] == pytest.approx(intended[0] + 0.05, abs=2e-4)
    assert fast[0][0] - fast[0][1] > 0.1  # sent after /slow and /follow ended, ~0.15 s late
    assert all(s >= i for s, i in fast)  # never before its slot


def test_open_model_applies_to_every_workload_by_its_user_classes(
    open_probe: tuple[list[dict[str, str]], dict],
) -> None:
    _, info = open_probe
    assert info["mro"] == ["Probe", "OpenModelUser", "Probe"]
    assert info["shop"] == "ShopBrowser" and info["shop_open"] is True


def test_closed_model_user_classes_are_the_workloads_own(probe: dict) -> None:
    # Without LAB_RATE nothing changes: the classes are the modules' USERS themselves.
    assert probe["closed_classes_are_own"] is True
