"""Scenario pages answer their seed questions with the lab's measurements.

Every scenario answers each seed it maps (the question, then every follow-up, in
that order: lab/seed_questions.py), cites only metrics that summary.json has,
and its page renders both before anything was measured and from a measured pair,
with the line that says where, when and on what machine the numbers come from.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import faults
from lab import measurements
from lab.bench.catalogue import CatalogueRow, record
from lab.commands.scenarios import page_markdown, write_handbook
from lab.measurements import (
    NOT_MEASURED,
    CurveMeasurement,
    MeasurementFile,
    fmt,
    placeholders,
    render,
)
from lab.seed_questions import SEEDS

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = faults.all_scenarios()
SLUGS = [s.slug for s in SCENARIOS]
NO_FILE = Path("/nonexistent/measurements.json")


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@pytest.mark.parametrize("slug", SLUGS)
def test_every_seed_question_and_follow_up_is_answered_in_order(slug: str) -> None:
    scenario = faults.get(slug)
    expected = [q for n in scenario.seeds for q in (SEEDS[n].question, *SEEDS[n].follow_ups)]
    asked = [_words(a.question) for a in scenario.answers]
    assert len(scenario.answers) >= len(expected), (
        f"{slug}: {len(scenario.answers)} answers for {len(expected)} questions "
        f"(seeds {scenario.seeds}: each question and its follow-ups)"
    )
    position = 0
    for question in expected:  # the seeds' questions, a subsequence of the answers'
        assert _words(question) in asked[position:], (
            f"{slug}: unanswered or out of order: {question!r}"
        )
        position = asked.index(_words(question), position) + 1
    for answer in scenario.answers:
        assert len(answer.answer.split()) >= 20, f"{slug}: a one-line answer to {answer.question!r}"


@pytest.mark.parametrize("slug", SLUGS)
def test_placeholders_name_summary_metrics(slug: str) -> None:
    from reports.metrics import METRICS  # the summary.json numbers; tests may import reports

    for answer in faults.get(slug).answers:
        for kind, metric in placeholders(answer.answer):
            if kind == measurements.SWEEP_KIND:
                assert metric in measurements.SWEEP_FIELDS, f"{slug}: {{sweep.{metric}}}"
                continue
            if kind == measurements.CURVE_KIND:
                assert CurveMeasurement.names_a_field(metric), f"{slug}: {{curve.{metric}}}"
                point_metric = metric.split("_", 3)[3]
                assert point_metric in measurements.CURVE_FIELDS or point_metric in METRICS, (
                    f"{slug}: {{curve.{metric}}}: no such summary metric"
                )
                continue
            assert kind in measurements.KINDS, f"{slug}: {{{kind}.{metric}}}: unknown kind"
            assert metric in METRICS or metric == measurements.SYMPTOM_METRIC, (
                f"{slug}: {{{kind}.{metric}}}: no such summary metric"
            )


def test_a_typo_in_a_placeholder_is_caught() -> None:
    from reports.metrics import METRICS

    found = placeholders("p95 {faulty.p95_ms}, lag {fixed.event_loop_lag_p99}, {before.rps}")
    bad = [(k, m) for k, m in found if k not in measurements.KINDS or m not in METRICS]
    assert bad == [("fixed", "event_loop_lag_p99"), ("before", "rps")]


def test_numbers_have_three_significant_digits() -> None:
    assert [fmt(v) for v in (0.012345, 1.5, 12.34, 123.4, 1234.5, 98765.0, 0.0)] == [
        "0.0123", "1.50", "12.3", "123", "1,230", "98,800", "0",
    ]  # fmt: skip
    assert fmt(None) == NOT_MEASURED


# --- synthetic run dirs ---------------------------------------------------------


def _numbers(variant: str) -> dict[str, float]:
    from reports.metrics import METRICS

    # Faulty twice the fixed, for every metric: every placeholder has a value.
    return {name: (2.0 if variant == "faulty" else 1.0) * (i + 1) for i, name in
            enumerate(METRICS)}  # fmt: skip


def _run_dir(root: Path, slug: str, variant: str, started: str, host: str = "bench-host") -> Path:
    scenario = faults.get(slug)
    run = root / f"{started.replace(':', '')}-{slug}-{variant}"
    run.mkdir(parents=True)
    meta = {
        "format": 1, "run_id": run.name, "scenario": slug, "variant": variant,
        "status": "completed", "started_at": started, "symptom": scenario.symptom.as_dict(),
        "machine": {"hostname": host, "cpus": 2}, "git_commit": "0123456789abcdef",
    }  # fmt: skip
    summary: dict[str, Any] = {"format": 3, **_numbers(variant)}
    summary["symptom"] = {"value": summary[scenario.symptom.metric], "present": variant == "faulty"}
    (run / "meta.json").write_text(json.dumps(meta))
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _compare_dir(root: Path, faulty: Path, fixed: Path) -> Path:
    out = root / f"compare-{faulty.name}"
    out.mkdir()
    (out / "comparison.json").write_text(
        json.dumps({"before_run": str(faulty), "after_run": str(fixed), "metrics": []})
    )
    return out


def _answers_section(page: str) -> str:
    return page.split("## The questions, answered", 1)[1].split("## Reproduce", 1)[0]


@pytest.mark.parametrize("slug", SLUGS)
def test_the_page_renders_without_a_measurement(slug: str, tmp_path: Path) -> None:
    page = page_markdown(slug, runs=tmp_path / "runs", committed=NO_FILE)
    assert "## Measured" in page and "Not measured yet" in page
    assert "## The questions, answered" in page
    assert not re.search(r"\{(faulty|fixed|ratio)\.", page), "a placeholder left unrendered"


@pytest.mark.parametrize("slug", SLUGS)
def test_the_page_renders_a_measured_pair_and_says_where_from(slug: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    faulty = _run_dir(runs, slug, "faulty", "2026-12-01T10:00:00+00:00")
    fixed = _run_dir(runs, slug, "fixed", "2026-12-01T10:01:00+00:00")
    compare = _compare_dir(runs, faulty, fixed)
    if any(kind == measurements.SWEEP_KIND for a in faults.get(slug).answers
           for kind, _ in placeholders(a.answer)):  # fmt: skip
        _bench_with_sweep(runs, slug)
    if any(kind == measurements.CURVE_KIND for a in faults.get(slug).answers
           for kind, _ in placeholders(a.answer)):  # fmt: skip
        _bench_with_curve(runs, slug)
    page = page_markdown(slug, runs=runs, committed=NO_FILE)
    assert NOT_MEASURED not in _answers_section(page)
    assert "| client p95 (ms) |" in page
    source = next(line for line in page.splitlines() if line.startswith("Source: prove/compare"))
    assert str(compare.name) in source
    assert "2026-12-01 10:00 UTC" in source and "bench-host (2 CPUs)" in source
    assert "commit 0123456789" in source
    assert "Measured as a pair" in page


def _bench_with_sweep(runs: Path, slug: str) -> None:
    """A bench.json whose slo-sweep part measured `slug`: 100 and 200/s met the SLO."""
    points = [
        {"rate": rate, "rps": rate, "p99_ms": 2.0, "error_rate": 0.0, "meets": True}
        for rate in (100.0, 200.0)
    ]
    part = {"variant": "fixed", "slo_p99_ms": 100.0, "step_s": 15.0, "points": points,
            "source": "bench", "where": "bench.json", "measured_at": "2026-12-01T10:02:00+00:00",
            "hostname": "bench-host", "cpus": 2, "git_commit": "0123456789"}  # fmt: skip
    (runs / "bench" / "x").mkdir(parents=True)
    (runs / "bench" / "x" / "bench.json").write_text(json.dumps({"sweep": {slug: part}}))


def _bench_with_curve(runs: Path, slug: str) -> None:
    """A bench.json whose curve part measured `slug`: worker-sizing's every series at 1 to
    4 workers; sse-logs' at 0, 1,000 and 2,000 clients."""
    from lab.bench import log_transports
    from lab.bench.worker_sizing import CLASSES, MIXES

    extra: dict[str, object] = {}
    if slug == log_transports.SLUG:
        points = [
            {"mix": mix, "worker_class": cls, "clients": n, "rss_mb": 100.0 + 0.02 * n,
             "cpu_cores": 0.1 + 0.0001 * n, "line_p50_ms": 20.0}
            for mix in log_transports.TRANSPORTS for cls in log_transports.VARIANTS
            for n in log_transports.CLIENTS
        ]  # fmt: skip
        log_transports.per_thousand(points)
        extra = {"axis": "clients", "columns": [list(c) for c in log_transports.COLUMNS]}
    else:
        points = [
            {"mix": mix, "worker_class": cls, "workers": n, "rps": 100.0 * n, "p50_ms": 5.0,
             "p99_ms": 50.0, "app_cpu_cores": 0.5 * n, "rss_end_mb": 90.0 * n, "error_rate": 0.0}
            for mix in MIXES for cls in CLASSES for n in (1, 2, 3, 4)
        ]  # fmt: skip
    part = {"step_s": 12.0, "points": points, **extra, "source": "bench", "where": "bench.json",
            "measured_at": "2026-12-01T10:02:00+00:00", "hostname": "bench-host", "cpus": 2,
            "git_commit": "0123456789"}  # fmt: skip
    (runs / "bench" / "y").mkdir(parents=True)
    (runs / "bench" / "y" / "bench.json").write_text(json.dumps({"curve": {slug: part}}))


def test_a_page_shows_its_worker_curve(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _bench_with_curve(runs, "worker-sizing")
    page = page_markdown("worker-sizing", runs=runs, committed=NO_FILE)
    assert "### The worker curve: count x type x mix" in page
    assert "| 4 | 400 (best) | 50.0 | 2.00 | 400 (best) |" in page
    assert "](../worker-sizing.png)" in page


def test_a_page_shows_its_clients_curve(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _bench_with_curve(runs, "sse-logs")
    page = page_markdown("sse-logs", runs=runs, committed=NO_FILE)
    assert "### The clients curve: what each count costs the app" in page
    # 20 MB and 0.1 cores per 1,000 clients: the 2,000 point over the 0 point, halved.
    assert "| 2000 | 140 | 20.0 | 0.100 | 20.0 |" in page
    assert "](../sse-logs.png)" in page
    answers = " ".join(_answers_section(page).split())
    assert "SSE 20.0 MB and WebSocket 20.0 MB per 1,000 clients" in answers
    assert "cost SSE 0.100 cores per 1,000 clients" in answers


def test_a_page_shows_its_rate_sweep(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _bench_with_sweep(runs, "performance-testing")
    page = page_markdown("performance-testing", runs=runs, committed=NO_FILE)
    assert "### Throughput at the SLO: the rate stepped" in page
    assert "| 200 | 200 | 2.00 | 0 | yes |" in page
    assert "every rate tried met it" in page.lower()
    assert "crosses the SLO: 200\n  requests/s" in _answers_section(page)


def test_placeholders_take_the_pairs_numbers(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _run_dir(runs, "memory-leak", "faulty", "2026-12-01T10:00:00+00:00")
    _run_dir(runs, "memory-leak", "fixed", "2026-12-01T10:01:00+00:00")
    pair = measurements.latest("memory-leak", ["p99_ms"], runs, NO_FILE)
    assert pair is not None and not pair.together  # two runs found on their own
    faulty, fixed = _numbers("faulty")["p99_ms"], _numbers("fixed")["p99_ms"]
    text = render("{faulty.p99_ms} vs {fixed.p99_ms}: {ratio.p99_ms}x, {faulty.rps}", pair)
    assert text == f"{fmt(faulty)} vs {fmt(fixed)}: 2.00x, {fmt(_numbers('faulty')['rps'])}"
    # Kept: what the page cites and the Measured block's numbers, not the whole summary.
    assert set(pair.faulty) == {"p99_ms", "p95_ms", "rps"}
    assert render("{faulty.p99_ms}", None) == NOT_MEASURED


def test_a_pair_measured_together_wins_over_newer_unrelated_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    faulty = _run_dir(runs, "no-cache", "faulty", "2026-12-01T10:00:00+00:00", "prove-host")
    fixed = _run_dir(runs, "no-cache", "fixed", "2026-12-01T10:01:00+00:00", "prove-host")
    _compare_dir(runs, faulty, fixed)
    _run_dir(runs, "no-cache", "faulty", "2026-12-01T12:00:00+00:00", "loose-host")
    _run_dir(runs, "no-cache", "fixed", "2026-12-01T12:05:00+00:00", "loose-host")
    pair = measurements.latest("no-cache", (), runs, NO_FILE)
    assert pair is not None and pair.together
    assert pair.provenance.source == "prove/compare" and pair.provenance.hostname == "prove-host"


def _bench(runs: Path, slug: str, started: str) -> tuple[Path, CatalogueRow]:
    bench = runs / "bench" / started[:10]
    faulty = _run_dir(bench / "runs", slug, "faulty", started)
    fixed = _run_dir(bench / "runs", slug, "fixed", started.replace(":00+", ":30+"))
    row = CatalogueRow(slug, "p95_ms", ">", faulty_run=str(faulty), fixed_run=str(fixed))
    (bench / "bench.json").write_text(json.dumps({"catalogue": {"rows": [row.as_dict()]}}))
    return bench, row


def test_the_bench_records_the_committed_file_and_newer_wins(tmp_path: Path) -> None:
    runs, committed = tmp_path / "runs", tmp_path / "docs" / "measurements.json"
    bench, row = _bench(runs, "db-latency", "2026-12-01T09:00:00+00:00")
    assert record([row], bench / "bench.json", committed) == ["db-latency"]
    stored = MeasurementFile.load(committed)
    assert stored.pairs["db-latency"].provenance.source == "bench"
    assert json.loads(committed.read_text())["format"] == MeasurementFile.FORMAT
    # A fresh clone: no runs/, the committed pair.
    pair = measurements.latest("db-latency", (), tmp_path / "no-runs", committed)
    assert pair is not None and pair.provenance.measured_at.startswith("2026-12-01T09:00")
    # A newer local pair (found in runs/bench/**) wins over the committed one.
    _bench(runs, "db-latency", "2026-12-02T09:00:00+00:00")
    newer = measurements.latest("db-latency", (), runs, committed)
    assert newer is not None and newer.provenance.measured_at.startswith("2026-12-02")
    assert newer.provenance.where.endswith("bench.json")
    # A file of another format is ignored, not misread.
    committed.write_text(json.dumps({"format": 99, "scenarios": {}}))
    assert MeasurementFile.load(committed).pairs == {}


def test_heavy_json_shows_its_steps(tmp_path: Path) -> None:
    committed = tmp_path / "measurements.json"
    stored = MeasurementFile(committed)
    step = {"step": "validated_json", "label": "the faulty variant", "last_byte_s": 18.6,
            "first_byte_s": 18.3, "cpu_s": 6.9, "peak_rss_growth_mb": 448.0,
            "wire_bytes": 62_968_526}  # fmt: skip
    stored.steps["heavy-json"] = measurements.StepsMeasurement(
        "heavy-json",
        250_000,
        (step, {**step, "step": "ndjson", "last_byte_s": 1.86}),
        measurements.machine_now("bench (heavy-json steps)", "runs/bench/x/bench.json"),
    )
    stored.save()
    page = page_markdown("heavy-json", runs=tmp_path / "runs", committed=committed)
    assert "### Step by step (250,000 rows" in page
    assert "| `ndjson`: the faulty variant | 1.86 |" in page and "| 10.0x |" in page
    assert "Source: bench (heavy-json steps), runs/bench/x/bench.json" in page


def test_the_handbook_writes_every_page(tmp_path: Path) -> None:
    written = write_handbook(tmp_path / "scenarios", runs=tmp_path / "runs", committed=NO_FILE)
    assert {p.stem for p in written} == {"README", *SLUGS}


def test_pages_never_import_the_app_or_reports() -> None:
    # `lab scenarios SLUG` and the handbook stay fast and app-free.
    code = (
        "import faults\n"
        "from lab.commands.scenarios import page_markdown\n"
        "for s in faults.all_scenarios(): page_markdown(s.slug)\n"
        "import sys, json; print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    leaked = sorted(m for m in modules if m.split(".")[0] in {"target_app", "reports"})
    assert leaked == [], leaked
