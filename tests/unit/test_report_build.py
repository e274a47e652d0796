"""reports: summary, report and comparison built from synthetic run dirs."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from reports import build_report, compare, summarize

pytestmark = pytest.mark.unit

T0 = 1_790_000_000
MB = 1024 * 1024
RPS = 100
ROUTES = {"/products": 0.6, "/products/{product_id}": 0.4}
DURATION_LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"]
DURATION_CUM = [0.1, 0.3, 0.6, 0.8, 0.9, 0.95, 0.98, 1.0, 1.0]
LAG_LE = ["0.001", "0.005", "0.01", "0.05", "0.1", "+Inf"]
LAG_CUM = [50, 80, 90, 99, 100, 100]  # per second and per pid
PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
PCT_VALUES = [12, 15, 18, 20, 30, 45, 60, 80, 120, 150, 160]
SYMPTOM = {
    "metric": "rss_slope_mb_per_10k_requests",
    "op": ">",
    "threshold": 5.0,
    "description": "RSS grows with the number of requests",
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_run(
    root: Path, name: str, *, slope_mb_per_10k: float, variant: str, seconds: int = 60
) -> Path:
    """A complete run dir: RSS = 50 MB + slope * requests / 10k (plus a little noise)."""
    run = root / name
    (run / "profile").mkdir(parents=True)
    meta = {
        "run_id": name,
        "scenario": "memory-leak",
        "title": "An unbounded cache",
        "kind": "fault",
        "variant": variant,
        "seeds": [2],
        "params": {"entry_kb": 8},
        "symptom": SYMPTOM,
        "load": {
            "workload": "shop",
            "shape": "constant",
            "users": 50,
            "spawn_rate": 50,
            "duration_s": seconds,
        },
        "app": {"server": "uvicorn", "workers": 1, "command": ["uvicorn", "target_app:app"]},
        "profile": "py-spy",
        "status": "completed",
        "error": None,
        "started_at": _iso(T0 - 5),
        "load_started_at": _iso(T0),
        "ended_at": _iso(T0 + seconds + 5),
        "machine": {"hostname": "test", "cpus": 2},
    }
    (run / "meta.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    rows: list[list[object]] = []
    for t in range(-3, seconds + 1):
        ts = T0 + t
        total = RPS * max(t, 0) + 5  # 5 requests before the load (readiness checks)
        rss = (50.0 + slope_mb_per_10k * total / 10_000 + rng.normal(0, 0.02)) * MB
        rows += [
            [ts, t, "lab_app_rss_bytes", "", rss],
            [ts, t, "lab_app_cpu_seconds_total", "", 10 + 0.6 * t],
            [ts, t, "lab_locust_cpu_seconds_total", "", 10 + 0.4 * t],
            [ts, t, "http_requests_total", "method=GET|route=/metrics|status=200", 50 + t],
        ]
        for route, share in ROUTES.items():
            rows.append(
                [
                    ts,
                    t,
                    "http_requests_total",
                    f"method=GET|route={route}|status=200",
                    total * share,
                ]
            )
            for le, cum in zip(DURATION_LE, DURATION_CUM, strict=True):
                rows.append(
                    [
                        ts,
                        t,
                        "http_request_duration_seconds_bucket",
                        f"le={le}|method=GET|route={route}",
                        total * share * cum,
                    ]
                )
        for le in DURATION_LE:  # must be excluded
            rows.append(
                [
                    ts,
                    t,
                    "http_request_duration_seconds_bucket",
                    f"le={le}|method=GET|route=/metrics",
                    (50 + t) * 1000,
                ]
            )
        for pid in (101, 102):
            for le, cum in zip(LAG_LE, LAG_CUM, strict=True):
                rows.append(
                    [ts, t, "event_loop_lag_seconds_bucket", f"le={le}|pid={pid}", cum * (t + 10)]
                )
    _write_csv(run / "metrics.csv", ["ts", "t", "name", "labels", "value"], rows)

    hist_header = [
        "Timestamp",
        "User Count",
        "Type",
        "Name",
        "Requests/s",
        "Failures/s",
        *PERCENTILES,
        "Total Request Count",
        "Total Failure Count",
        "Total Median Response Time",
        "Total Average Response Time",
        "Total Min Response Time",
        "Total Max Response Time",
        "Total Average Content Size",
    ]
    hist = []
    for t in range(seconds + 1):
        n = RPS * t
        pcts: list[object] = ["N/A"] * len(PERCENTILES) if n == 0 else list(PCT_VALUES)
        hist.append(
            [
                T0 + t,
                50,
                "",
                "Aggregated",
                f"{RPS:2f}",
                "1.000000",
                *pcts,
                n,
                n // 100,
                12,
                20.5,
                2,
                160,
                512,
            ]
        )
    _write_csv(run / "locust_stats_history.csv", hist_header, hist)

    stats_header = [
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Average Content Size",
        "Requests/s",
        "Failures/s",
        *PERCENTILES,
    ]
    n = RPS * seconds
    _write_csv(
        run / "locust_stats.csv",
        stats_header,
        [
            ["GET", "/products", n, n // 100, 12, 20.5, 2, 160, 512, RPS, 1, *PCT_VALUES],
            ["", "Aggregated", n, n // 100, 12, 20.5, 2, 160, 512, RPS, 1, *PCT_VALUES],
        ],
    )
    (run / "profile" / "pyspy.speedscope.json").write_text("{}")
    profile = {
        "tool": "py-spy",
        "files": {
            "speedscope": "profile/pyspy.speedscope.json",
            "flamegraph": "profile/pyspy-flamegraph.svg",
        },
        "top_title": "Hottest functions (share of samples)",
        "top": [
            {"function": "render|x", "location": "faults/x.py:42", "value": 0.31, "unit": "share"}
        ],
        "command": ["py-spy", "record"],
    }
    (run / "profile" / "profile.json").write_text(json.dumps(profile))
    return run


@pytest.fixture
def leak(tmp_path: Path) -> Path:
    return make_run(tmp_path, "leak", slope_mb_per_10k=20.0, variant="faulty")


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    return make_run(tmp_path, "flat", slope_mb_per_10k=0.0, variant="fixed")


def test_summary_of_a_leaking_run(leak: Path) -> None:
    s = summarize(leak)
    assert s["run_id"] == "leak"
    assert (s["scenario"], s["variant"], s["status"]) == ("memory-leak", "faulty", "completed")
    assert s["requests"] == 6000
    assert s["failures"] == 60
    assert s["error_rate"] == pytest.approx(0.01)
    assert (s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]) == (12, 45, 80, 160)
    assert s["duration_s"] == pytest.approx(61.0)  # capped at Locust's last row + 1 s
    assert s["rps"] == pytest.approx(6000 / 61)
    assert s["rss_slope_mb_per_10k_requests"] == pytest.approx(20.0, rel=0.02)
    assert s["rss_start_mb"] == pytest.approx(50.0, abs=0.1)
    assert s["rss_end_mb"] == pytest.approx(50.0 + 20.0 * 6005 / 10_000, abs=0.1)
    assert s["rss_peak_mb"] >= s["rss_end_mb"] - 0.1
    assert s["event_loop_lag_p99_ms"] == pytest.approx(50.0, abs=0.5)
    assert s["server_p95_ms"] == pytest.approx(250.0, abs=1.0)  # /metrics excluded
    assert s["app_cpu_seconds"] == pytest.approx(36.0)
    assert s["locust_cpu_seconds"] == pytest.approx(24.0)
    assert s["app_cpu_ms_per_request"] == pytest.approx(6.0)
    sym = s["symptom"]
    assert sym["present"] is True
    assert (sym["name"], sym["op"], sym["threshold"]) == ("rss_slope_mb_per_10k_requests", ">", 5)
    assert sym["value"] == pytest.approx(s["rss_slope_mb_per_10k_requests"])


def test_summary_of_a_flat_run(flat: Path) -> None:
    s = summarize(flat)
    assert abs(s["rss_slope_mb_per_10k_requests"]) < 1.0
    assert s["symptom"]["present"] is False


def test_percentiles_come_exact_from_the_request_log(leak: Path) -> None:
    assert summarize(leak)["percentiles_from"] == "locust_stats.csv"
    # 100 requests of 1.0..1.99 ms: Locust's buckets round all of them to 1 or 2 ms.
    rows = [[1790000000 + i / 10, "GET /products", 1.0 + i / 100, 512, 1] for i in range(100)]
    rows.append([1790000011, "GET /prod"])  # a torn last line is skipped
    _write_csv(leak / "requests.csv", ["start", "name", "ms", "bytes", "ok"], rows)
    s = summarize(leak)
    assert s["percentiles_from"] == "requests.csv"
    assert s["p50_ms"] == pytest.approx(1.49)
    assert s["routes"]["GET /products"]["p95_ms"] == pytest.approx(1.94)
    assert s["routes"]["GET /products"]["p99_ms"] == pytest.approx(1.98)


def test_build_report_writes_everything(leak: Path) -> None:
    html = build_report(leak)
    assert html == leak / "report.html"
    summary = json.loads((leak / "summary.json").read_text())
    assert summary["symptom"]["present"] is True
    for plot in ("latency", "throughput", "rss", "event_loop_lag", "cpu"):
        assert (leak / "plots" / f"{plot}.png").stat().st_size > 1000
    md = (leak / "report.md").read_text()
    assert "Symptom PRESENT: rss_slope_mb_per_10k_requests = " in md
    assert "(plots/rss.png)" in md
    assert "Hottest functions" in md and "render\\|x" in md
    assert "[profile/pyspy.speedscope.json](profile/pyspy.speedscope.json)" in md
    assert "profile/pyspy-flamegraph.svg` (missing)" in md
    assert "- [metrics.csv](metrics.csv)" in md
    assert "report.html" not in md.split("## Evidence files")[1]
    text = html.read_text()
    assert "data:image/png;base64," in text
    assert "Symptom PRESENT" in text
    assert '<img src="plots/' not in text  # self-contained


def test_partial_run_with_only_meta(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    (run / "meta.json").write_text(
        json.dumps(
            {
                "run_id": "partial",
                "scenario": "memory-leak",
                "variant": "faulty",
                "status": "interrupted",
                "symptom": SYMPTOM,
            }
        )
    )
    html = build_report(run)
    assert html.is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    for key in (
        "requests",
        "rps",
        "p95_ms",
        "rss_slope_mb_per_10k_requests",
        "duration_s",
        "event_loop_lag_p99_ms",
        "app_cpu_ms_per_request",
    ):
        assert summary[key] is None
    assert summary["symptom"]["present"] is False
    assert summary["symptom"]["value"] is None
    assert any("metrics.csv is missing" in n for n in summary["notes"])
    md = (run / "report.md").read_text()
    assert "Symptom UNKNOWN" in md
    assert "locust_stats.csv is missing" in md


def test_partial_run_with_short_and_empty_files(leak: Path) -> None:
    meta = json.loads((leak / "meta.json").read_text())
    meta["status"] = "interrupted"
    del meta["ended_at"]
    (leak / "meta.json").write_text(json.dumps(meta))
    (leak / "locust_stats.csv").write_text("")
    lines = (leak / "locust_stats_history.csv").read_text().splitlines()
    (leak / "locust_stats_history.csv").write_text("\n".join(lines[:4]) + "\n1790000003,50,")
    metrics = (leak / "metrics.csv").read_text().splitlines()
    (leak / "metrics.csv").write_text("\n".join(metrics[:200]))
    (leak / "profile" / "profile.json").write_text("{not json")
    build_report(leak)
    s = json.loads((leak / "summary.json").read_text())
    assert s["requests"] is None
    assert s["rss_slope_mb_per_10k_requests"] is None
    assert s["duration_s"] is not None
    assert any("locust_stats.csv is empty" in n for n in s["notes"])
    assert any("profile.json could not be read" in n for n in s["notes"])


def test_meta_without_symptom(flat: Path) -> None:
    meta = json.loads((flat / "meta.json").read_text())
    del meta["symptom"]
    (flat / "meta.json").write_text(json.dumps(meta))
    s = summarize(flat)
    assert s["symptom"] is None
    build_report(flat)
    assert "Symptom not evaluated" in (flat / "report.md").read_text()


def test_compare_leak_vs_flat(leak: Path, flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    html = compare(leak, flat, out)
    assert html == out / "comparison.html"
    assert (leak / "summary.json").is_file()  # built on demand
    data = json.loads((out / "comparison.json").read_text())
    assert data["before_run"] == str(leak)
    assert data["after_run"] == str(flat)
    assert data["before"]["symptom"]["present"] is True
    assert data["after"]["symptom"]["present"] is False
    metrics = {m["name"]: m for m in data["metrics"]}
    for name in (
        "rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "error_rate",
        "rss_slope_mb_per_10k_requests",
        "rss_end_mb",
        "event_loop_lag_p99_ms",
        "app_cpu_ms_per_request",
    ):
        assert set(metrics[name]) >= {
            "name",
            "before",
            "after",
            "ratio",
            "ci_low",
            "ci_high",
            "significant",
            "better",
        }
    slope = metrics["rss_slope_mb_per_10k_requests"]
    assert slope["significant"] is True
    assert slope["better"] == "after"
    assert slope["ci_high"] < 0  # CI of after - before
    assert slope["ci_low"] == pytest.approx(-20.0, abs=2.0)
    assert metrics["rps"]["ratio"] == pytest.approx(1.0)
    assert metrics["rps"]["significant"] is False
    # No requests.csv: Locust's CSVs have no per-request times to resample.
    assert metrics["p95_ms"]["significant"] is None
    assert metrics["p95_ms"]["source"].startswith("client (Locust): locust_stats.csv")
    for row in metrics.values():  # every CI holds its own point
        if row["ci_low"] is not None:
            point = row["difference"] if row["ci_kind"] == "difference" else row["ratio"]
            assert row["ci_low"] <= point <= row["ci_high"], row["name"]
    assert metrics["rss_end_mb"]["better"] == "after"
    assert metrics["rss_end_mb"]["significant"] is None
    assert "the fix works" in data["headline"]
    for plot in ("latency_cdf", "metrics_bars", "rss_compare", "latency_compare"):
        assert (out / "plots" / f"{plot}.png").is_file()
    md = (out / "comparison.md").read_text()
    assert "Symptom present before, absent after: the fix works" in md
    assert "| metric | source | before | after | ratio | 95% CI | beyond noise? |" in md
    assert "data:image/png;base64," in html.read_text()


def test_compare_with_a_partial_run(leak: Path, tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"status": "interrupted", "symptom": SYMPTOM}))
    html = compare(leak, run, tmp_path / "cmp")
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert html.is_file()
    assert data["headline"].startswith("No verdict")
    assert all(m["significant"] is None for m in data["metrics"])


def test_compare_adds_the_scenarios_own_symptom_metric() -> None:
    from reports.compare import _symptom_specs

    cores = {"symptom": {"name": "app_cpu_cores", "op": "<"}, "app_cpu_cores": 1.0}
    (spec,) = _symptom_specs(cores)
    assert spec.name == "app_cpu_cores" and spec.better == "higher"  # "<": smaller is sicker
    listed = {"symptom": {"name": "p95_ms", "op": ">"}, "p95_ms": 3.0}
    assert _symptom_specs(listed) == []  # already compared
    route = {"symptom": {"name": "p50_ms of /a / p50_ms of /b", "op": ">="}}
    assert _symptom_specs(route) == []  # no summary field of its own
