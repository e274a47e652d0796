"""no-cache: recomputed per request vs once per TTL window, even under a stampede."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def _computations(run_dir: Path) -> float:
    """The app's own count of bestseller computations at the end of the run."""
    last = 0.0
    with (run_dir / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["name"] == "cache_requests_total" and row["labels"] == (
                "cache=bestsellers|result=computed"
            ):
                last = float(row["value"])
    return last


def test_no_cache_computes_once_per_ttl_window_with_50_clients(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("redis")
    faulty, fixed = prove("no-cache", tmp_path, env, duration="15s", users=50)
    faulty_runs = _computations(tmp_path / faulty["run_id"])
    fixed_runs = _computations(tmp_path / fixed["run_id"])
    assert faulty_runs >= faulty["requests"]  # every request recomputed
    # TTL 10 s over a 15 s load: the windows starting at 0 s and 10 s, maybe one
    # more at the edge, whatever the 50 concurrent clients do.
    assert 1 <= fixed_runs <= math.ceil(15 / 10) + 1, fixed_runs
    assert fixed["p95_ms"] * 5 < faulty["p95_ms"]
