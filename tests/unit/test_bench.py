"""The benchmark's readers and ratios (the runs themselves are `make bench`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.bench.capacity import parse_wrk
from lab.bench.catalogue import CatalogueRow, check_targets, markdown

WRK_OUTPUT = """\
Running 8s test @ http://127.0.0.1:41995
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    78.52ms   40.11ms 412.02ms   71.22%
  Latency Distribution
     50%   67.40ms
     75%   90.01ms
     90%  130.22ms
     99%  302.50ms
  6543 requests in 8.02s, 3.21MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    815.12
Transfer/sec:    409.00KB
"""


def test_wrk_output_is_read_with_its_units() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result["rps"] == pytest.approx(815.12)
    assert result["p50_ms"] == pytest.approx(67.4)
    assert result["p99_ms"] == pytest.approx(302.5)
    assert result["errors"] == 7
    assert result["requests"] == 6543
    micro = parse_wrk(WRK_OUTPUT.replace("302.50ms", "950.00us"))
    assert micro["p99_ms"] == pytest.approx(0.95)


def test_gain_reads_the_same_way_whichever_direction_is_sick() -> None:
    # A symptom with ">" (bigger is sicker): faulty / fixed.
    assert CatalogueRow("a", "p95_ms", ">", faulty=900, fixed=90).ratio == pytest.approx(10)
    # With "<" (smaller is sicker, e.g. cores used, rows per second): fixed / faulty.
    assert CatalogueRow("b", "app_cpu_cores", "<", faulty=1.0, fixed=1.6).ratio == pytest.approx(
        1.6
    )
    assert CatalogueRow("c", "error_rate", ">", faulty=0.3, fixed=0).ratio is None


def test_targets_are_judged_and_unmeasured_ones_said_so() -> None:
    rows = [
        CatalogueRow("offset-pagination", "p50_ms", ">", faulty=30.0, fixed=1.1),
        CatalogueRow(
            "heavy-json",
            "rss_growth_mb",
            ">",
            faulty=540,
            fixed=11,
            faulty_p95_ms=5200,
            fixed_p95_ms=2000,
        ),
        CatalogueRow("row-by-row-insert", "rps", "<", skipped="needs postgres"),
    ]
    met = {c["scenario"]: c["met"] for c in check_targets(rows)}
    assert met == {"offset-pagination": True, "heavy-json": False, "row-by-row-insert": None}
    table = "\n".join(markdown(rows, check_targets(rows)))
    assert "skipped: needs postgres" in table
    assert "| offset-pagination | `p50_ms` | 30 | 1.1 | x27.3 |" in table


def test_the_heavy_json_steps_are_a_bench_part_with_their_own_table() -> None:
    from lab.bench.heavy_json_steps import STEPS, part_markdown
    from lab.commands.bench import PARTS

    assert "heavy-json-steps" in PARTS
    step = {
        "step": "validated_json", "rows": 10, "first_byte_s": 2.0, "last_byte_s": 4.0,
        "cpu_s": 1.0, "peak_rss_growth_mb": 100.0, "wire_bytes": 2**20, "body_bytes": 2**20,
        "content_type": "application/json", "content_encoding": None, "rows_sha256": "x",
        "label": STEPS["validated_json"],
    }  # fmt: skip
    table = "\n".join(part_markdown({"steps": [step, {**step, "step": "ndjson",
                                                       "last_byte_s": 0.5}]}))  # fmt: skip
    assert "| validated_json |" in table and "| x8 |" in table


def test_the_outage_part_reports_the_refused_p99_against_the_target() -> None:
    from lab.bench.outage import TARGET_P99_MS, markdown
    from lab.commands.bench import PARTS

    assert "outage" in PARTS
    numbers = {
        "run": "runs/x", "rate": 50.0, "healthy_count": 700, "healthy_p99_ms": 7.2,
        "refused_count": 950, "refused_p99_ms": 3.7, "met": True,
    }  # fmt: skip
    table = "\n".join(markdown(numbers))
    assert "| provider down (refused by the breaker) | 950 | 3.7 |" in table
    assert f"refused p99 < {TARGET_P99_MS:g} ms: yes" in table
    assert markdown({"skipped": "needs toxiproxy: `make up` first"}) == [
        "skipped: needs toxiproxy: `make up` first"
    ]


def test_an_outage_window_holds_the_named_requests_meant_for_it() -> None:
    import pandas as pd

    from lab.outage import window_latencies

    latencies = pd.DataFrame({
        "name": ["pay", "pay", "other", "pay", "pay"],
        "at": [9.99, 10.0, 11.0, 19.99, 20.0],
        "ms": [1.0, 2.0, 3.0, 4.0, 5.0],
    })  # fmt: skip
    # [start, end): the request meant for 20.0 belongs to the next window.
    assert window_latencies(latencies, "pay", 10.0, 20.0).tolist() == [2.0, 4.0]
    # An outage's two windows, each without its first second (SETTLE_S).
    from lab.outage import SETTLE_S, OutageWindow

    healthy, down = OutageWindow(healthy_from=9.0 - SETTLE_S, down=19.0, up=30.0).split(
        latencies, "pay"
    )
    assert healthy.tolist() == [1.0, 2.0] and down.tolist() == [5.0]  # 19.99: settling


def _sweep(points: list[dict[str, object]]) -> dict[str, object]:
    return {
        "variant": "fixed", "slo_p99_ms": 100.0, "step_s": 15.0, "points": points,
        "source": "bench", "where": "runs/bench/x/bench.json",
        "measured_at": "2026-12-03T06:00:00+00:00", "hostname": "vm", "cpus": 2,
        "git_commit": "abc",
    }  # fmt: skip


def test_the_throughput_at_the_slo_is_the_last_rate_of_an_unbroken_run_of_passes() -> None:
    from lab.bench.slo_sweep import markdown, meets
    from lab.measurements import SweepMeasurement

    assert meets({"p99_ms": 100.0, "error_rate": 0.0}, 100.0)
    assert not meets({"p99_ms": 100.1, "error_rate": 0.0}, 100.0)
    assert not meets({"p99_ms": 2.0, "error_rate": 0.02}, 100.0)  # errors are not answers
    assert not meets({"p99_ms": None}, 100.0)
    points = [
        {"rate": 100.0, "rps": 100.0, "p99_ms": 2.0, "error_rate": 0.0, "meets": True},
        {"rate": 200.0, "rps": 200.0, "p99_ms": 3.0, "error_rate": 0.0, "meets": True},
        {"rate": 400.0, "rps": 300.0, "p99_ms": 900.0, "error_rate": 0.0, "meets": False},
        {"rate": 800.0, "rps": 800.0, "p99_ms": 5.0, "error_rate": 0.0, "meets": True},
    ]
    # A pass after a failure (a lucky step) is not a throughput the app holds.
    assert SweepMeasurement.from_dict("s", _sweep(points)).throughput_at_slo == 200.0
    assert SweepMeasurement.from_dict("s", _sweep(points[2:3])).throughput_at_slo is None
    table = "\n".join(markdown(_sweep(points[:3])))
    assert "| 400 | 300 | 900 | 0 | **no** |" in table
    assert "Throughput at the SLO (fixed variant, 15 s per rate): 200 requests/s." in table
    assert "lower bound" in "\n".join(markdown(_sweep(points[:2])))


def test_a_sweep_is_kept_in_the_measurement_file_and_cited_by_its_page(tmp_path: Path) -> None:
    from lab.measurements import MeasurementFile, SweepMeasurement, cited_metrics, render

    point = {"rate": 100.0, "rps": 100.0, "p99_ms": 2.0, "error_rate": 0.0, "meets": True}
    stored = MeasurementFile(tmp_path / "m.json")
    stored.sweeps["performance-testing"] = SweepMeasurement.from_dict("p", _sweep([point]))
    stored.save()
    sweep = MeasurementFile.load(tmp_path / "m.json").sweeps["performance-testing"]
    assert sweep.throughput_at_slo == 100.0 and sweep.step_s == 15.0
    text = "holds {sweep.throughput_at_slo} requests/s at p99 {fixed.p99_ms} ms"
    assert cited_metrics([text]) == {"p99_ms"}  # a pair's metrics only
    assert render(text, None, sweep) == "holds 100 requests/s at p99 (not measured yet) ms"
    assert "not measured" in render(text, None, None).split(" requests")[0]


def test_a_part_stored_replaces_its_kind_only_and_keeps_the_rest(tmp_path: Path) -> None:
    from lab.measurements import CurveMeasurement, MeasurementFile, SweepMeasurement

    path = tmp_path / "m.json"
    point = {"rate": 100.0, "rps": 100.0, "p99_ms": 2.0, "error_rate": 0.0, "meets": True}
    MeasurementFile.store(path, SweepMeasurement.from_dict("sync-webhook", _sweep([point])))
    curve = {"step_s": 24.0, "axis": "clients", "columns": [["rss_mb", "RSS MB"]],
             "points": [{"mix": "sse", "worker_class": "pushed", "clients": 1000}]}  # fmt: skip
    MeasurementFile.store(path, CurveMeasurement.from_dict("sse-logs", curve))
    stored = MeasurementFile.load(path)
    assert set(stored.sweeps) == {"sync-webhook"} and set(stored.curves) == {"sse-logs"}
    kept = stored.curves["sse-logs"]
    assert kept.axis == "clients" and kept.columns == (("rss_mb", "RSS MB"),)
    assert kept.series("sse", "pushed")[0]["clients"] == 1000


def test_an_outage_ends_with_its_run_and_always_brings_the_link_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    import lab.outage
    from lab.errors import LabError
    from lab.outage import Outage

    calls: list[tuple[str, bool]] = []

    def reset(api: str | None = None) -> None:
        calls.append(("reset", True))

    def set_enabled(link: str, on: bool, api: str | None = None) -> dict[str, object]:
        calls.append((link, on))
        return {}

    monkeypatch.setattr(lab.outage.toxiproxy, "reset", reset)
    monkeypatch.setattr(lab.outage.toxiproxy, "set_enabled", set_enabled)
    ends = time.monotonic() + 0.5
    window = Outage("upstream", before_s=0.1, for_s=60.0).during(
        ready=lambda: True, alive=lambda: time.monotonic() < ends
    )
    # The run ended half a second in: so did the outage, not 60 s later.
    assert window.up - window.down < 10.0
    assert calls == [("reset", True), ("upstream", False), ("upstream", True)]
    # A run that ends before the link goes down leaves it alone.
    calls.clear()
    with pytest.raises(LabError, match="the run ended before upstream was taken down"):
        Outage("upstream", before_s=60.0, for_s=1.0).during(ready=lambda: True, alive=lambda: False)
    assert calls == [("reset", True)]


def test_the_bench_commands_help_names_every_part() -> None:
    from typer.testing import CliRunner

    from lab.cli import app
    from lab.commands.bench import PARTS

    shown = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "400"}).output
    assert [part for part in PARTS if part not in shown] == []
