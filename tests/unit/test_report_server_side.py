"""The report's server-side p95: a bucket of the app's histogram, never a guess inside it.

The app's `http_request_duration_seconds` keeps bucket counts only. Prometheus'
interpolation inside a bucket assumes the requests spread evenly over it, and can
put the server's p95 above the client's, though the server's time is part of the
client's. app.log does not help: it logs a duration only for slow (>= 1 s) or
failed requests (target_app/observability.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from reports import build_report, compare, summarize
from reports.stats import histogram_quantile
from tests.unit.test_report_build import T0, _write_csv, make_run

pytestmark = pytest.mark.unit

LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"]
# Per second: 50 requests the app serves in 200 ms, 50 in 260 ms; the client sees 8 ms more.
FAST_S, SLOW_S, NETWORK_MS, PER_HALF = 0.200, 0.260, 8.0, 50


def _at_most(bound: float) -> int:
    """How many of the two kinds of request (fast, slow) take at most `bound` seconds."""
    return sum(duration <= bound for duration in (FAST_S, SLOW_S))


def _server_side_run(root: Path, name: str, seconds: int = 60) -> Path:
    run = make_run(root, name, slope_mb_per_10k=0.0, variant="fixed", seconds=seconds)
    path = run / "metrics.csv"
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh)]
    header, body = rows[0], rows[1:]
    body = [r for r in body if r[2] != "http_request_duration_seconds_bucket"]
    for t in range(-3, seconds + 1):
        done = max(t, 0)
        for le in LE:
            bound = float(le)
            count = PER_HALF * done * _at_most(bound)
            body.append([str(T0 + t), str(t), "http_request_duration_seconds_bucket",
                         f"le={le}|method=GET|route=/products", str(float(count))])  # fmt: skip
    _write_csv(path, header, body)  # type: ignore[arg-type]
    requests = [
        [T0 + t + i / (2 * PER_HALF), "GET /products", 1000 * server + NETWORK_MS, 512, 1]
        for t in range(seconds)
        for i, server in enumerate([FAST_S] * PER_HALF + [SLOW_S] * PER_HALF)
    ]
    _write_csv(run / "requests.csv", ["start", "name", "ms", "bytes", "ok"], requests)
    return run


def test_the_interpolation_would_put_the_server_above_the_client(tmp_path: Path) -> None:
    run = _server_side_run(tmp_path, "run")
    s = summarize(run)
    client_p95 = s["p95_ms"]
    assert client_p95 == pytest.approx(1000 * SLOW_S + NETWORK_MS)  # 268 ms
    # What the report said before: Prometheus' guess inside (0.25, 0.5].
    counts = [PER_HALF * _at_most(float(le)) for le in LE]
    guess = histogram_quantile(0.95, list(zip([float(le) for le in LE], counts, strict=True)))
    assert guess is not None and 1000 * guess == pytest.approx(475.0)
    assert 1000 * guess > client_p95  # a server time above the client's: impossible

    # What it says now: the bucket, as its two ends, the exact p95 between them.
    assert (s["server_p95_low_ms"], s["server_p95_ms"]) == (250.0, 500.0)
    assert s["server_p95_low_ms"] < 1000 * SLOW_S <= s["server_p95_ms"]
    assert s["server_p95_low_ms"] <= client_p95  # consistent with the client

    build_report(run)
    md = (run / "report.md").read_text()
    (row,) = [line for line in md.splitlines() if "`server_p95_ms`" in line]
    assert "bucket upper bound" in row and "| ≤ 500 |" in row
    assert "upper end of the bucket that holds the p95" in row
    assert "the exact value is in (250, 500] ms" in row
    assert "475" not in md
    (client_row,) = [line for line in md.splitlines() if "`p95_ms`" in line]
    assert "client (Locust): requests.csv, every request, exact" in client_row
    html = (run / "report.html").read_text()
    assert "≤ 500" in html and "the exact value is in (250, 500] ms" in html


def test_the_comparison_shows_the_bound_as_a_bound(tmp_path: Path) -> None:
    before, after = _server_side_run(tmp_path, "before"), _server_side_run(tmp_path, "after")
    out = tmp_path / "cmp"
    compare(before, after, out)
    rows = {m["name"]: m for m in json.loads((out / "comparison.json").read_text())["metrics"]}
    server = rows["server_p95_ms"]
    assert (server["before"], server["after"], server["ratio"]) == (500.0, 500.0, 1.0)
    assert server["source"].startswith("server side (app): http_request_duration_seconds")
    assert server["ci_low"] <= 1.0 <= server["ci_high"]
    md = (out / "comparison.md").read_text()
    (line,) = [x for x in md.splitlines() if x.startswith("| server-side p95")]
    assert "| ≤ 500 | ≤ 500 |" in line and "(250, 500] ms" in line


def test_a_p95_above_the_top_bucket_has_only_a_lower_bound(tmp_path: Path) -> None:
    run = make_run(tmp_path, "slow", slope_mb_per_10k=0.0, variant="fixed")
    path = run / "metrics.csv"
    text = path.read_text().splitlines()
    kept = [line for line in text if "http_request_duration_seconds_bucket" not in line]
    for t in range(-3, 61):
        for le in ("1.0", "+Inf"):
            n = 100 * max(t, 0) * (1 if le == "+Inf" else 0.5)  # half the requests over 1 s
            kept.append(f"{T0 + t},{t},http_request_duration_seconds_bucket,"
                        f"le={le}|method=GET|route=/products,{n}")  # fmt: skip
    path.write_text("\n".join(kept) + "\n")
    s = summarize(run)
    assert s["server_p95_ms"] is None and s["server_p95_low_ms"] == 1000.0
    assert any("+Inf bucket" in n for n in s["notes"])
    build_report(run)
    (row,) = [x for x in (run / "report.md").read_text().splitlines() if "`server_p95_ms`" in x]
    assert "| > 1,000 |" in row and "above 1,000 ms" in row
    assert np.isfinite(s["server_p95_low_ms"])
