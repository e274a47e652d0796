"""reports/metrics.py: each summary field declared once, and everything else derived from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faults.symptom import Symptom
from reports import build_report, summarize, summary
from reports.evidence import exact_quantiles, load_evidence
from reports.formats import AuditFile
from reports.metrics import (
    BAR_METRICS,
    COMPARED_METRICS,
    FIELDS,
    KEY_METRICS,
    METRICS,
    ROUTE_METRICS,
    STEPS,
    SUMMARY_FIELDS,
    Group,
    Metric,
)
from reports.plots import _percentile_curve
from reports.samples import Samples
from reports.stats import whole
from reports.steps import AUDIT_COUNTS
from reports.summary import SummaryFile
from tests.unit.test_report_build import T0, _write_csv, make_run
from tests.unit.test_report_signal_plots import _append_metrics, _set_load_end, _signal_rows

pytestmark = pytest.mark.unit

SECONDS = 60


def _scenario_rows(t: int) -> list[list[object]]:
    """What only some scenarios measure: the kernel's peak RSS, ETL jobs, rejected work,
    periodic jobs' runs;
    and the requests the app served, which upstream calls are counted against."""
    ts, done = T0 + t, max(t, 0)
    return [
        [ts, t, "http_request_duration_seconds_count", "route=/products", 100.0 * done],
        [ts, t, "lab_app_rss_hwm_bytes", "", (60.0 + 0.1 * done) * 2**20],
        [ts, t, "etl_jobs_total", "", float(done // 10)],
        [ts, t, "etl_rows_total", "outcome=extracted", 100.0 * done],
        [ts, t, "etl_rows_total", "outcome=loaded", 90.0 * done],
        [ts, t, "etl_duplicate_rows_total", "", 5.0 * done],
        [ts, t, "work_items_total", "kind=import|outcome=rejected", 2.0 * done],
        [ts, t, "periodic_job_ticks", "task=sales-digest", float(done // 2)],
        [ts, t, "periodic_job_runs", "task=sales-digest", float(done)],
        [ts, t, "webhook_payments", "count=payments", float(done)],
        [ts, t, "webhook_payments", "count=events", float(done // 2)],
    ]


@pytest.fixture
def rich_run(tmp_path: Path) -> Path:
    """A run dir in which every field of the summary has something to be computed from:
    an open-model run (meta.json load.rate), so that `offered_rps` has a value, whose
    requests are sent 0 to 6 ms after their intended time."""
    run = make_run(tmp_path, "rich", slope_mb_per_10k=2.0, variant="faulty")
    _set_load_end(run, SECONDS)
    meta = json.loads((run / "meta.json").read_text())
    meta["load"].update(rate=100.0, load_processes=1)
    (run / "meta.json").write_text(json.dumps(meta))
    _append_metrics(
        run, [row for t in range(-3, SECONDS + 1) for row in _signal_rows(t) + _scenario_rows(t)]
    )
    requests = [[f"{T0 + i / 100 + i % 7 / 1000:.4f}", "GET /products",
                 1.0 + (i * 37) % 200 / 10, 512, 1, f"{T0 + i / 100:.4f}"]
                for i in range(SECONDS * 100)]  # fmt: skip
    _write_csv(run / "requests.csv", ["start", "name", "ms", "bytes", "ok", "intended"], requests)
    deliveries = [[f"{T0 + i:.4f}", f"evt_{i}_0123abcd", 1, "first", 200, "0.010"]
                  for i in range(SECONDS * 10)]  # fmt: skip
    columns = ["start", "event_id", "attempt", "kind", "status", "seconds"]
    _write_csv(run / "webhooks.csv", columns, deliveries)
    counts = dict.fromkeys(AUDIT_COUNTS, 1)
    AuditFile(run).write("microservice-cascade", counts)
    return run


def test_summary_fields_are_the_registry_in_its_order() -> None:
    assert [f.name for f in FIELDS] == summary.SUMMARY_FIELDS
    assert len(set(SUMMARY_FIELDS)) == len(SUMMARY_FIELDS)
    assert "format" not in SUMMARY_FIELDS  # SummaryFile's, not a field of the run


def test_every_listed_metric_is_a_numeric_summary_field() -> None:
    for group in (KEY_METRICS, COMPARED_METRICS, BAR_METRICS, ROUTE_METRICS):
        for metric in group:
            assert isinstance(metric, Metric) and metric.name in SUMMARY_FIELDS, metric.name
            assert METRICS[metric.name] is metric
    for metric in COMPARED_METRICS:  # "better" in the comparison needs a direction
        assert metric.better is not None, metric.name
    assert all(Group.COMPARED in m.groups for m in BAR_METRICS)
    assert {m.name for m in ROUTE_METRICS} == {
        "requests",
        "failures",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    }


def test_summary_and_summary_json_keep_the_registry_order(rich_run: Path) -> None:
    assert list(summarize(rich_run)) == SUMMARY_FIELDS
    build_report(rich_run)
    on_disk = json.loads((rich_run / "summary.json").read_text())
    assert list(on_disk) == ["format", *SUMMARY_FIELDS]
    assert on_disk["format"] == SummaryFile.FORMAT
    for numbers in on_disk["routes"].values():
        assert list(numbers) == [m.name for m in ROUTE_METRICS]


def test_each_step_fills_the_fields_that_name_it_and_only_those(rich_run: Path) -> None:
    ev = load_evidence(rich_run)
    unset = object()
    out: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS, unset)
    notes: list[str] = []
    filled_by = {}
    for step in STEPS:
        before = dict(out)
        step(ev, out, notes)
        filled_by.update({k: step for k, v in out.items() if v is not before.get(k)})
    assert list(out) == SUMMARY_FIELDS  # no step adds a key of its own
    declared = {f.name: f.fill for f in FIELDS}
    wrong = {k: step.__name__ for k, step in filled_by.items() if declared[k] is not step}
    assert wrong == {}
    assert set(filled_by) == set(SUMMARY_FIELDS)  # and every field has a step that fills it
    assert all(out[m.name] is not None for m in METRICS.values()), [
        m.name for m in METRICS.values() if out[m.name] is None
    ]


def test_every_declared_sampler_gives_samples(rich_run: Path) -> None:
    ev = load_evidence(rich_run)
    sampled = [m for m in METRICS.values() if m.samples is not None]
    assert {m.name for m in sampled} >= {"rps", "p95_ms", "error_rate", "app_cpu_ms_per_request"}
    for metric in sampled:
        assert isinstance(metric.samples, Samples)
        found = metric.samples.of(ev)
        assert found is not None, metric.name
        assert found.n >= 4, metric.name


# Whose pieces hold the very data the summary's number is computed from: on the whole
# run (every piece once) they give that number, so the comparison's point is the
# summary's ratio without any scaling. rps, error rate and CPU per request take their
# level from Locust's totals and their spread from its history (see bootstrap_ratio).
EXACT = ("p50_ms", "p95_ms", "p99_ms", "p99_uncorrected_ms", "event_loop_lag_p99_ms",
         "server_p95_ms", "rss_slope_mb_per_10k_requests")  # fmt: skip


def test_the_pieces_of_the_whole_run_give_the_summarys_number(rich_run: Path) -> None:
    ev, numbers = load_evidence(rich_run), summarize(rich_run)
    for name in EXACT:
        samples = METRICS[name].samples
        assert samples is not None, name
        pieces = samples.of(ev)
        assert pieces is not None, name
        assert whole(pieces) == pytest.approx(numbers[name], rel=1e-9), name
    for name in ("rps", "error_rate", "app_cpu_ms_per_request"):  # close, not equal
        samples = METRICS[name].samples
        assert samples is not None
        pieces = samples.of(ev)
        assert pieces is not None
        assert whole(pieces) == pytest.approx(numbers[name], rel=0.1), name


def test_every_number_of_the_report_says_where_it_comes_from(rich_run: Path) -> None:
    numbers = summarize(rich_run)
    for metric in METRICS.values():
        assert metric.source_in(numbers), metric.name
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert METRICS[key].source_in(numbers).startswith("client")
        assert "requests.csv" in METRICS[key].source_in(numbers)
        assert "locust_stats.csv" in METRICS[key].source_in(
            {"percentiles_from": "locust_stats.csv"}
        )
    assert METRICS["server_p95_ms"].source_in(numbers).startswith("server side")
    build_report(rich_run)
    md = (rich_run / "report.md").read_text()
    assert "| metric | value | unit | source |" in md
    assert "client (Locust): requests.csv, every request, exact" in md
    assert "requests.csv, every request, exact, from the intended send time (open model)" in md


def test_summary_percentiles_and_the_cdf_are_one_computation(rich_run: Path) -> None:
    summary = summarize(rich_run)
    assert summary["percentiles_from"] == "requests.csv"
    assert summary["p99_ms"] > summary["p99_uncorrected_ms"]  # the CDF is the corrected one
    curve = _percentile_curve(load_evidence(rich_run))
    assert curve is not None
    at = dict(zip(curve[1], curve[0], strict=True))
    for key, level in (("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0)):
        assert summary[key] == at[level]
    assert exact_quantiles([3.0, 1.0, 2.0, 4.0], [0.5, 0.75, 1.0]) == [2.0, 3.0, 4.0]


def _unregistered(symptom: Symptom) -> str | None:
    """Why a Symptom cannot be evaluated on a summary, or None when it can."""
    metric = METRICS.get(symptom.metric)
    if metric is None:
        return f"{symptom.metric!r} is not a metric of reports/metrics.py"
    if (symptom.route or symptom.baseline_route) and Group.PER_ROUTE not in metric.groups:
        return f"{symptom.metric!r} is not a per-route metric (summary.json routes)"
    return None


def test_the_check_catches_an_unregistered_symptom_metric() -> None:
    assert _unregistered(Symptom("rss_slope_mb_per_10k_requests", ">", 5.0, "")) is None
    assert _unregistered(Symptom("p50_ms", ">", 2.0, "", route="GET /a")) is None
    assert _unregistered(Symptom("rss_slope_mb_per_10k", ">", 5.0, "")) is not None
    assert _unregistered(Symptom("status", ">", 5.0, "")) is not None  # a field, not a number
    assert _unregistered(Symptom("rss_end_mb", ">", 5.0, "", route="GET /a")) is not None


def test_every_scenario_symptom_names_a_registered_metric() -> None:
    import faults  # the catalogue, in a test only: reports/ never imports it

    problems = {
        scenario.slug: problem
        for scenario in faults.all_scenarios()
        if (problem := _unregistered(scenario.symptom)) is not None
    }
    assert problems == {}
