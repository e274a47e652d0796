"""reports on open-model runs: latency from the intended send time, without coordinated
omission, next to the closed model's numbers, which stay as they were.

The stalled run is worked out by hand. The schedule sends 100 requests per second
for 60 s (request k intended at k / 100 s), each answered in 5 ms, except that
the app stalls for a second: the request sent at 20.00 s takes 1000 ms, and the
generator, waiting for it, sends the 99 requests meant for 20.01 ... 20.99 s at
21.00 s, each then answered in 5 ms. From the actual send (`ms`), 5,999 requests
took 5 ms and one 1000 ms: the p99 is 5 ms, the stall invisible. From the
intended send time, request 2000 + j (j = 1..99) waited (100 - j) * 10 ms before
it was sent: its latency is (100 - j) * 10 + 5 ms, that is 15, 25, ..., 995 ms. With
5,900 requests at 5 ms the p99 (the 5,940th of 6,000 in order) is the 40th of
those: 5 + 10 * 40 = 405 ms.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reports import build_report, compare, compare_runs, summarize
from reports.evidence import Evidence, load_evidence
from reports.formats import SummaryFile
from reports.latency import per_second_percentiles, request_latencies
from reports.plots import _plot_open_latency
from reports.summary import load_or_build_summary
from tests.unit.test_report_build import T0, _write_csv, make_run
from tests.unit.test_report_signal_plots import _set_load_end

pytestmark = pytest.mark.unit

RATE = 100.0
SECONDS = 60
STALL_AT, STALL_MS, FAST_MS = 20.0, 1000.0, 5.0
CORRECTED_P99 = 405.0  # worked out in the module docstring
OLD_COLUMNS = ["start", "name", "ms", "bytes", "ok"]
COLUMNS = [*OLD_COLUMNS, "intended"]


def _schedule(stall: bool) -> list[tuple[float, float, float]]:
    """(intended, start, ms) of every request, seconds since T0."""
    out = []
    for k in range(int(RATE) * SECONDS):
        intended = k / RATE
        start, ms = intended, FAST_MS
        if stall and k == int(STALL_AT * RATE):
            ms = STALL_MS
        elif stall and STALL_AT < intended < STALL_AT + 1:
            start = STALL_AT + 1  # sent when the stalled response came back
        out.append((intended, start, ms))
    return out


def _set_rate(run: Path, rate: float | None) -> None:
    meta = json.loads((run / "meta.json").read_text())
    meta["load"]["rate"] = rate
    meta["load"]["load_processes"] = 1
    (run / "meta.json").write_text(json.dumps(meta))


def _write_requests(
    path: Path, rows: list[tuple[float, float, float]], *, intended: bool = True
) -> None:
    """requests.csv as loadtests/request_log.py writes it: epoch s to 0.1 ms; `intended`
    blank when False (a closed run's rows), the column left out for an old file."""
    body: list[list[object]] = []
    for when, start, ms in rows:
        row: list[object] = [f"{T0 + start:.4f}", "GET /products", f"{ms:.3f}", 512, 1]
        body.append([*row, f"{T0 + when:.4f}" if intended else ""])
    _write_csv(path, COLUMNS, body)


def _open_run(root: Path, name: str, *, stall: bool = True, rate: float = RATE) -> Path:
    run = make_run(root, name, slope_mb_per_10k=0.0, variant="faulty" if stall else "fixed")
    _set_load_end(run, SECONDS)
    _set_rate(run, rate)
    _write_requests(run / "requests.csv", _schedule(stall))
    return run


def _closed_run(root: Path, name: str, *, column: bool) -> Path:
    """A closed run of the same requests, as Locust's users send them: each when the
    previous one came back (no schedule, so no late sends either). `column` False:
    a requests.csv of before the `intended` column; True: the column, blank."""
    run = make_run(root, name, slope_mb_per_10k=0.0, variant="faulty")
    _set_load_end(run, SECONDS)
    rows = [(start, start, ms) for _, start, ms in _schedule(stall=True)]
    if column:
        _write_requests(run / "requests.csv", rows, intended=False)
    else:
        _write_csv(run / "requests.csv", OLD_COLUMNS,
                   [[f"{T0 + s:.4f}", "GET /products", f"{ms:.3f}", 512, 1]
                    for _, s, ms in rows])  # fmt: skip
    return run


@pytest.fixture
def stalled(tmp_path: Path) -> Path:
    return _open_run(tmp_path, "stalled")


def test_the_stall_shows_from_the_intended_send_time(stalled: Path) -> None:
    s = summarize(stalled)
    assert (s["load_model"], s["offered_rps"]) == ("open", RATE)
    assert s["p99_ms"] == pytest.approx(CORRECTED_P99, abs=0.01)
    assert s["p99_uncorrected_ms"] == FAST_MS  # what the closed model's measure says
    assert s["p99_ms"] > 50 * s["p99_uncorrected_ms"]
    assert (s["p50_ms"], s["p95_ms"]) == (FAST_MS, FAST_MS)
    assert s["routes"]["GET /products"]["p99_ms"] == pytest.approx(CORRECTED_P99, abs=0.01)
    assert s["rps"] == RATE  # 6,000 requests in 60 s: all sent
    assert not any("achieved of the" in n for n in s["notes"])
    (late,) = [n for n in s["notes"] if "schedule interval" in n]
    # Sent 10, 20, ..., 990 ms late: 98 more than one interval (10 ms), up to 0.99 s.
    assert "98 of 6,000 requests" in late and "(10 ms)" in late and "0.99 s late" in late


def test_the_report_names_the_source_of_each_percentile(stalled: Path) -> None:
    build_report(stalled)
    md = (stalled / "report.md").read_text()
    assert "This run used the open model: requests sent on a schedule at 100 req/s" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    (p99,) = [line for line in rows if "`p99_ms`" in line]
    assert "requests.csv, every request, exact, from the intended send time (open model)" in p99
    assert "| 405.0 |" in p99
    (raw,) = [line for line in rows if "`p99_uncorrected_ms`" in line]
    assert "from the actual send (open model: coordinated omission not corrected)" in raw
    (offered,) = [line for line in rows if "`offered_rps`" in line]
    assert "meta.json: load.rate" in offered
    # The open run's own plot (corrected and uncorrected lines), not the closed fallback.
    assert _plot_open_latency(load_evidence(stalled), stalled / "plots") is not None
    on_disk = json.loads((stalled / "summary.json").read_text())
    assert on_disk["format"] == SummaryFile.FORMAT == 4


def test_the_latency_plot_has_both_lines_on_the_same_seconds(stalled: Path) -> None:
    ev = load_evidence(stalled)
    corrected = per_second_percentiles(ev, corrected=True)
    sent = per_second_percentiles(ev, corrected=False)
    assert corrected is not None and sent is not None
    assert list(corrected["t"]) == list(sent["t"]) == [float(t) for t in range(SECONDS)]
    at = {int(t): (c, u) for t, c, u in zip(corrected["t"], corrected["p99"], sent["p99"],
                                            strict=True)}  # fmt: skip
    # Second 20 holds the stalled request and the 99 meant for it: from the intended
    # time they waited up to 1 s; from the actual send only the one stalled is slow.
    assert at[20][0] == pytest.approx(995.0, abs=0.01) and at[20][1] == FAST_MS
    assert at[21] == (FAST_MS, FAST_MS)  # the late sends belong to their intended second


def test_a_run_that_could_not_send_the_offered_rate_says_so(tmp_path: Path) -> None:
    run = _open_run(tmp_path, "short", stall=False, rate=120.0)  # 100/s sent of 120
    s = summarize(run)
    (note,) = [n for n in s["notes"] if "achieved of the" in n]
    assert "100 req/s achieved of the 120 offered (83%)" in note
    assert "could not send at the offered rate" in note
    assert "the about 1,200 requests the schedule meant to send but never sent" in note
    build_report(run)
    assert "could not send at the offered rate" in (run / "report.md").read_text()


def test_locust_start_up_in_the_load_window_is_not_a_shortfall(tmp_path: Path) -> None:
    # The schedule kept to the request (100/s for SECONDS), but the load window also
    # holds Locust's start-up and shut-down: 2.5 s more, as a 15 s run measured
    # (16.5 s window). Against the window that read as "could not send" on every run.
    run = _open_run(tmp_path, "kept", stall=False)
    _set_load_end(run, SECONDS + 2.5)
    s = summarize(run)
    assert s["rps"] < 0.97 * RATE  # the window's rate: what a reader sees as "rps"
    assert not any("achieved of the" in n for n in s["notes"]), s["notes"]


def test_a_closed_run_is_unchanged(tmp_path: Path) -> None:
    old = summarize(_closed_run(tmp_path, "old", column=False))
    new = summarize(_closed_run(tmp_path, "new", column=True))
    for s in (old, new):
        assert (s["load_model"], s["offered_rps"]) == ("closed", None)
        # The response times alone: the stalled request and 5,999 fast ones.
        assert (s["p50_ms"], s["p95_ms"], s["p99_ms"]) == (FAST_MS, FAST_MS, FAST_MS)
        assert s["p99_uncorrected_ms"] == s["p99_ms"]  # nothing to correct
        assert not any("open model" in n for n in s["notes"])
    assert {k: v for k, v in old.items() if k != "run_id"} == {
        k: v for k, v in new.items() if k != "run_id"
    }


def test_an_old_run_dir_still_reports_as_closed(tmp_path: Path) -> None:
    """A format-3 summary.json, meta.json without load.rate, requests.csv without
    `intended`: the summary is computed again, in format 4, as a closed run."""
    run = _closed_run(tmp_path, "old", column=False)
    meta = json.loads((run / "meta.json").read_text())
    assert "rate" not in meta["load"]
    (run / "summary.json").write_text(json.dumps({"format": 3, "p99_ms": 1.0}))
    s = load_or_build_summary(run)
    assert (s["load_model"], s["p99_ms"], s["p99_uncorrected_ms"]) == ("closed", 5.0, 5.0)
    assert json.loads((run / "summary.json").read_text())["format"] == 4
    build_report(run)
    (p99,) = [line for line in (run / "report.md").read_text().splitlines() if "`p99_ms`" in line]
    assert "client (Locust): requests.csv, every request, exact |" in p99


def test_an_open_run_without_intended_times_reports_no_corrected_percentile(
    tmp_path: Path,
) -> None:
    run = _open_run(tmp_path, "blank")
    _write_requests(run / "requests.csv", _schedule(stall=True), intended=False)
    s = summarize(run)
    assert (s["p50_ms"], s["p95_ms"], s["p99_ms"]) == (None, None, None)
    assert s["routes"]["GET /products"]["p99_ms"] is None  # not Locust's uncorrected one
    assert s["p99_uncorrected_ms"] == FAST_MS
    assert any("without intended send times" in n for n in s["notes"])
    (run / "requests.csv").unlink()  # Locust's CSVs are from the actual send, too
    s = summarize(run)
    assert s["p99_ms"] is None and s["p99_uncorrected_ms"] == 80.0  # make_run's Locust p99


def test_a_send_before_its_intended_time_waited_nothing(tmp_path: Path) -> None:
    frame = pd.DataFrame({"name": ["GET /a", "GET /a"], "start": [10.0, 11.5],
                          "ms": [3.0, 4.0], "intended": [10.0001, 11.0]})  # fmt: skip
    ev = Evidence(run_dir=tmp_path, meta={"load": {"rate": 2.0}}, requests=frame)
    found = request_latencies(ev)
    assert found is not None
    assert list(found["ms"]) == [3.0, 504.0] and list(found["at"]) == [10.0001, 11.0]
    closed = request_latencies(Evidence(run_dir=tmp_path, meta={"load": {}}, requests=frame))
    assert closed is not None and list(closed["ms"]) == [3.0, 4.0]


def test_parts_of_a_distributed_run_not_merged_yet_are_read(stalled: Path) -> None:
    whole = summarize(stalled)
    lines = (stalled / "requests.csv").read_text().splitlines()
    header, body = lines[0], lines[1:]
    for n in (0, 1):  # two workers' rows, interleaved in time
        part = stalled / f"requests.part{n}.csv"
        part.write_text("\n".join([header, *body[n::2]]) + "\n")
    (stalled / "requests.csv").unlink()
    s = summarize(stalled)
    assert s["p99_ms"] == whole["p99_ms"] and s["p99_uncorrected_ms"] == FAST_MS
    assert any("read 2 requests.part<N>.csv" in n for n in s["notes"])


def test_the_comparison_bootstraps_the_corrected_p99(tmp_path: Path) -> None:
    before, after = _open_run(tmp_path, "before"), _open_run(tmp_path, "after", stall=False)
    result = compare_runs(before, after, n_boot=300, seed=0)
    rows = {row["name"]: row for row in result["metrics"]}
    p99 = rows["p99_ms"]
    assert p99["before"] == pytest.approx(CORRECTED_P99, abs=0.01) and p99["after"] == FAST_MS
    assert p99["ratio"] == pytest.approx(FAST_MS / CORRECTED_P99, rel=1e-4)
    assert p99["ci_low"] <= p99["ratio"] <= p99["ci_high"]
    assert p99["source"].endswith("from the intended send time (open model)")
    raw = rows["p99_uncorrected_ms"]
    assert raw["ratio"] == 1.0 and raw["ci_low"] <= 1.0 <= raw["ci_high"]
    assert "Not like-for-like" not in result["headline"]


def test_a_comparison_of_different_loads_says_so(tmp_path: Path) -> None:
    opened = _open_run(tmp_path, "open")
    closed = _closed_run(tmp_path, "closed", column=True)
    out = tmp_path / "cmp"
    compare(opened, closed, out)
    data = json.loads((out / "comparison.json").read_text())
    assert (
        "Not like-for-like: the before run is open-model at 100 req/s offered, "
        in (data["headline"])
    )
    assert (
        "the after run closed-model: their latencies are not measured alike" in (data["headline"])
    )
    assert "Not like-for-like" in (out / "comparison.md").read_text()
    row = {m["name"]: m for m in data["metrics"]}["p99_ms"]
    assert row["source"].startswith("before: ") and "; after: " in row["source"]
    faster = _open_run(tmp_path, "faster", rate=200.0)
    headline = compare_runs(opened, faster, n_boot=50)["headline"]
    assert "open-model at 100 req/s offered, the after run open-model at 200" in headline
    assert "their loads differ" in headline
