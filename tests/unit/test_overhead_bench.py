"""The overhead bench's arithmetic: per-round ratios, and its table from a bench.json."""

from __future__ import annotations

import pytest

from lab.bench.overhead import markdown, round_ratios

pytestmark = pytest.mark.unit


def _round(rps: float, cpu: float = 2.0) -> dict[str, float]:
    return {"rps": rps, "p99_ms": 100.0, "requests": rps * 10, "cpu_ms_per_request": cpu}


def test_each_round_pairs_the_two_apps_that_ran_back_to_back() -> None:
    rounds = {
        "instrumented": [_round(90), _round(300), _round(95)],
        "bare": [_round(100), _round(400), _round(100)],
    }
    assert round_ratios(rounds) == pytest.approx([0.9, 0.75, 0.95])


def test_rounds_of_unequal_length_are_an_error() -> None:
    with pytest.raises(ValueError):
        round_ratios({"instrumented": [_round(1)], "bare": []})


def test_the_table_shows_every_round_and_reads_old_results() -> None:
    results = {
        "median": {"bare": _round(100), "instrumented": _round(96, 2.1)},
        "throughput_ratio": 0.96,
        "p99_ratio": 1.0,
        "cpu_per_request_ratio": 1.05,
        "wrk_healthz_rps": None,
        "locust_healthz": {"rps": 5000.0},
        "round_ratios": [0.95, 0.97, 0.96],
    }
    text = "\n".join(markdown(results))
    assert "per round: 0.950, 0.970, 0.960" in text
