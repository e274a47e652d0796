"""reports: the plots of a scenario's own signal (database, upstream, cache, status, work)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from reports import build_report
from reports.evidence import load_evidence
from reports.plots import (
    counter_increase_by,
    counter_rates,
    gauge_values,
    plot_cache,
    plot_database,
    plot_status,
    plot_upstream,
    plot_work,
)
from tests.unit.test_report_build import RPS, T0, _iso, make_run

pytestmark = pytest.mark.unit

SECONDS = 60
SIGNAL_PLOTS = ("database", "upstream", "cache", "status", "work")
BORN_500_AT = 10  # /products starts failing with 2 errors/s at t=10
BORN_READ_ERROR_AT = 20
UPSTREAM = "upstream_request_duration_seconds_count"


def _append_metrics(run: Path, rows: list[list[object]]) -> None:
    with (run / "metrics.csv").open("a", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _set_load_end(run: Path, seconds: int = SECONDS) -> None:
    meta = json.loads((run / "meta.json").read_text())
    meta["load_ended_at"] = _iso(T0 + seconds)
    (run / "meta.json").write_text(json.dumps(meta))


def _signal_rows(t: int) -> list[list[object]]:
    """Samples of the app's own signal at t (seconds since the load start)."""
    ts = T0 + t
    total = RPS * max(t, 0) + 5  # as make_run's http_requests_total
    busy = 2 if 30 <= t < 40 else 0  # breaker open for 10 s
    rows: list[list[object]] = [
        [ts, t, "db_queries_per_request_sum", "", 3.0 * total],
        [ts, t, "db_queries_per_request_count", "", float(total)],
        [ts, t, "db_query_duration_seconds_sum", "", 0.01 * total],
        [ts, t, "http_request_duration_seconds_sum", "route=/products", 0.02 * total],
        [ts, t, "http_request_duration_seconds_sum", "route=/metrics", 1000.0 * (t + 10)],
        [ts, t, "db_pool_checked_out", "", 5.0],
        [ts, t, UPSTREAM, "dependency=payments|outcome=ok", 10.0 * max(t, 0)],
        [ts, t, "circuit_breaker_state", "dependency=payments", float(busy)],
        [ts, t, "cache_requests_total", "cache=bestsellers|result=hit", 90.0 * max(t, 0)],
        [ts, t, "cache_requests_total", "cache=bestsellers|result=miss", 10.0 * max(t, 0)],
        [ts, t, "cache_entries", "cache=bestsellers", float(min(max(t, 0), 50))],
        [ts, t, "cache_entries", "cache=product_page", 7.0],
        [ts, t, "http_requests_total", "method=POST|route=/imports|status=202", 4.0 * max(t, 0)],
        [ts, t, "work_items_total", "kind=import|outcome=ok", 500.0 * max(t, 0)],
    ]
    if t >= BORN_500_AT:
        errors = 2.0 * (t - BORN_500_AT + 1)  # already 2 at its first sample
        rows.append([ts, t, "http_requests_total", "method=GET|route=/products|status=500", errors])
    if t >= BORN_READ_ERROR_AT:
        rows.append(
            [
                ts,
                t,
                UPSTREAM,
                "dependency=payments|outcome=ReadError",
                3.0 * (t - BORN_READ_ERROR_AT + 1),
            ]
        )
    return rows


def _zero_rows(t: int) -> list[list[object]]:
    """The same metrics, present but flat at 0 (nothing happened)."""
    ts = T0 + t
    return [
        [ts, t, "db_queries_per_request_sum", "", 0.0],
        [ts, t, "db_queries_per_request_count", "", 0.0],
        [ts, t, "db_query_duration_seconds_sum", "", 0.0],
        [ts, t, "db_pool_checked_out", "", 0.0],
        [ts, t, UPSTREAM, "dependency=payments|outcome=ok", 0.0],
        [ts, t, "circuit_breaker_state", "dependency=payments", 0.0],
        [ts, t, "cache_requests_total", "cache=bestsellers|result=hit", 0.0],
        [ts, t, "cache_entries", "cache=bestsellers", 0.0],
        [ts, t, "work_items_total", "kind=import|outcome=ok", 0.0],
    ]


@pytest.fixture
def signal_run(tmp_path: Path) -> Path:
    run = make_run(tmp_path, "signal", slope_mb_per_10k=0.0, variant="faulty")
    _set_load_end(run)
    _append_metrics(run, [row for t in range(-3, SECONDS + 1) for row in _signal_rows(t)])
    return run


@pytest.fixture
def quiet_run(tmp_path: Path) -> Path:
    run = make_run(tmp_path, "quiet", slope_mb_per_10k=0.0, variant="fixed")
    _set_load_end(run)
    _append_metrics(run, [row for t in range(-3, SECONDS + 1) for row in _zero_rows(t)])
    return run


def _plot_notes(run: Path) -> str:
    return (run / "report.md").read_text()


def test_signal_plots_are_written(signal_run: Path) -> None:
    build_report(signal_run)
    for plot in SIGNAL_PLOTS:
        assert (signal_run / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    md = _plot_notes(signal_run)
    for plot in SIGNAL_PLOTS:
        assert f"plot {plot}.png skipped" not in md
        assert f"(plots/{plot}.png)" in md


def test_series_born_mid_run_starts_from_zero(signal_run: Path) -> None:
    ev = load_evidence(signal_run)
    inc = counter_increase_by(ev, "http_requests_total", by=("status",), exclude_route="/metrics")
    assert inc is not None
    assert list(inc.deltas.columns) == ["200", "202", "500"]
    totals = inc.totals
    assert totals["500"] == pytest.approx(2.0 * (SECONDS - BORN_500_AT + 1))
    assert totals["200"] == pytest.approx(RPS * SECONDS)  # /metrics excluded
    rates = inc.rates
    assert rates["500"].loc[float(BORN_500_AT)] == pytest.approx(2.0)
    assert rates["500"].loc[float(BORN_500_AT) - 1] == 0.0
    assert rates["200"].tolist() == pytest.approx([RPS] * SECONDS)
    upstream = counter_rates(ev, UPSTREAM, by=("dependency", "outcome"))
    assert upstream is not None
    assert upstream["payments/ReadError"].loc[float(BORN_READ_ERROR_AT)] == pytest.approx(3.0)
    assert upstream["payments/ok"].tolist() == pytest.approx([10.0] * SECONDS)


def test_database_ratios_and_gauges(signal_run: Path) -> None:
    ev = load_evidence(signal_run)
    q_sum = counter_rates(ev, "db_queries_per_request_sum")
    q_count = counter_rates(ev, "db_queries_per_request_count")
    assert q_sum is not None and q_count is not None
    per_request = (q_sum["total"] / q_count["total"]).tolist()
    assert per_request == pytest.approx([3.0] * SECONDS)
    req_time = counter_rates(ev, "http_request_duration_seconds_sum", exclude_route="/metrics")
    assert req_time is not None
    assert req_time["total"].tolist() == pytest.approx([0.02 * RPS] * SECONDS)
    entries = gauge_values(ev, "cache_entries", by=("cache",))
    assert entries is not None
    assert list(entries.columns) == ["bestsellers", "product_page"]
    assert entries.index.min() == 0.0  # the load window only
    assert entries["product_page"].eq(7.0).all()


def test_counter_reset_gives_no_negative_rate(signal_run: Path) -> None:
    t = SECONDS + 0.5  # still inside the window's slack
    _append_metrics(signal_run, [[T0 + t, t, "work_items_total", "kind=import|outcome=ok", 1.0]])
    ev = load_evidence(signal_run)
    rates = counter_rates(ev, "work_items_total", by=("kind", "outcome"))
    assert rates is not None
    assert rates["import/ok"].dropna().ge(0).all()
    assert rates["import/ok"].isna().iloc[-1]


def test_signal_plots_skipped_without_their_metrics(tmp_path: Path) -> None:
    run = make_run(tmp_path, "plain", slope_mb_per_10k=0.0, variant="fixed")
    _set_load_end(run)
    build_report(run)
    md = _plot_notes(run)
    for plot in ("database", "upstream", "cache", "work"):
        assert not (run / "plots" / f"{plot}.png").exists()
        assert f"plot {plot}.png skipped: no data" in md
    assert (run / "plots" / "status.png").is_file()  # http_requests_total is there


def test_signal_plots_skipped_when_all_zero(quiet_run: Path) -> None:
    ev = load_evidence(quiet_run)
    plots_dir = quiet_run / "plots"
    for make in (plot_database, plot_upstream, plot_cache, plot_work):
        assert make(ev, plots_dir) is None, make.__name__
    build_report(quiet_run)
    md = _plot_notes(quiet_run)
    for plot in ("database", "upstream", "cache", "work"):
        assert not (plots_dir / f"{plot}.png").exists()
        assert f"plot {plot}.png skipped: no data" in md


def test_stale_signal_plot_is_removed(signal_run: Path, tmp_path: Path) -> None:
    build_report(signal_run)
    lines = (signal_run / "metrics.csv").read_text().splitlines()
    kept = [line for line in lines if ",work_items_total," not in line]
    (signal_run / "metrics.csv").write_text("\n".join(kept) + "\n")
    build_report(signal_run)
    assert not (signal_run / "plots" / "work.png").exists()
    assert "plot work.png skipped: no data" in _plot_notes(signal_run)


def test_partial_run_dir(signal_run: Path) -> None:
    meta = json.loads((signal_run / "meta.json").read_text())
    meta["status"] = "interrupted"
    del meta["load_ended_at"], meta["ended_at"]
    (signal_run / "meta.json").write_text(json.dumps(meta))
    (signal_run / "locust_stats.csv").write_text("")
    (signal_run / "locust_stats_history.csv").unlink()
    lines = (signal_run / "metrics.csv").read_text().splitlines()
    (signal_run / "metrics.csv").write_text("\n".join(lines[:-40]) + "\n1790000059,59,cache_")
    html = build_report(signal_run)
    assert html.is_file()
    summary = json.loads((signal_run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    md = _plot_notes(signal_run)
    # No plot broke on the torn files (the diagnosis may speak of failed calls).
    assert not re.search(r"plot \S+ failed", md)
    assert "diagnosis failed" not in md


def test_single_sample_and_no_metrics(tmp_path: Path) -> None:
    run = tmp_path / "one"
    run.mkdir()
    (run / "meta.json").write_text(
        json.dumps({"scenario": "x", "variant": "faulty", "load_started_at": _iso(T0)})
    )
    rows = "".join(f"{T0},0,{r[2]},{r[3]},{r[4]}\n" for r in _signal_rows(0))
    (run / "metrics.csv").write_text("ts,t,name,labels,value\n" + rows)
    ev = load_evidence(run)
    for make in (plot_upstream, plot_status, plot_work):  # rates need two samples
        assert make(ev, run / "plots") is None, make.__name__
    (run / "metrics.csv").unlink()
    build_report(run)
    md = _plot_notes(run)
    for plot in SIGNAL_PLOTS:
        assert f"plot {plot}.png skipped: no data" in md


def test_every_plot_of_one_run_is_drawn_by_the_report() -> None:
    """One list (RUN_PLOTS) names them all: a plot left out of it is never drawn."""
    import inspect

    from reports import plots

    listed = {make.__name__: name for name, make in plots.RUN_PLOTS}
    one_run = {
        name
        for name, fn in inspect.getmembers(plots, inspect.isfunction)
        if name.startswith("plot_")
        and list(inspect.signature(fn).parameters) == ["ev", "plots_dir"]
    }
    assert one_run == set(listed)
    assert all(name == f"{fn.removeprefix('plot_')}.png" for fn, name in listed.items())


def test_requests_plot_draws_every_request_and_the_failures(tmp_path: Path) -> None:
    run = make_run(tmp_path, "reqs", slope_mb_per_10k=0.0, variant="fixed")
    rows = [
        [
            T0 + i / 50,
            "GET /products" if i % 3 else "GET /healthz",
            1 + i % 40,
            512,
            int(i % 97 > 0),
        ]
        for i in range(3000)
    ]
    with (run / "requests.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["start", "name", "ms", "bytes", "ok"], *rows])
    build_report(run)
    assert (run / "plots" / "requests.png").stat().st_size > 10_000
    assert "requests.png" in (run / "report.md").read_text()
