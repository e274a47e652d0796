"""Workloads and shapes. Locust is imported in a child process: it monkey-patches with gevent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadtests import SHAPE_NAMES
from loadtests.workloads import available

pytestmark = pytest.mark.unit

_PROBE = """
import os, json
os.environ.update(LAB_USERS="10", LAB_SPAWN_RATE="5", LAB_DURATION="10")
from loadtests.shapes import SHAPES
from loadtests.workloads import available, user_classes
workloads = {w: [c.__name__ for c in user_classes(w)] for w in available()}
out = {"shapes": sorted(SHAPES), "workloads": workloads}
ticks = {}
for name, cls in SHAPES.items():
    shape = cls()
    series = []
    for t in (0, 1, 4.5, 5, 9.9, 10, 11):
        shape.get_run_time = lambda t=t: t
        series.append(shape.tick())
    ticks[name] = series
out["ticks"] = ticks
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_shape_names_match_the_shape_classes(probe: dict) -> None:
    assert probe["shapes"] == sorted(SHAPE_NAMES)


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
