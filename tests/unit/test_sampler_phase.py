"""The sampler's ticks wander in phase, so they cannot lock onto a periodic load
(lab/sampler.py's docstring: a locked sampler made one slot of an open-model
schedule pay for every scrape)."""

from __future__ import annotations

import csv
import http.server
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.sampler import Sampler

pytestmark = pytest.mark.unit

INTERVAL = 0.04  # s: ~35 samples in 1.5 s


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# HELP probe_value a value\n# TYPE probe_value gauge\nprobe_value 1.0\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def metrics_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def test_sample_times_wander_within_a_quarter_period_of_their_ticks(
    tmp_path: Path, metrics_url: str
) -> None:
    out = tmp_path / "metrics.csv"
    sampler = Sampler(metrics_url, out, lambda: None, interval=INTERVAL)
    sampler.start()
    time.sleep(1.5)
    sampler.stop()
    with out.open() as handle:
        ts = [float(r["ts"]) for r in csv.DictReader(handle) if r["name"] == "probe_value"]
    gaps = [b - a for a, b in itertools.pairwise(ts)][:-1]  # the last: stop()'s
    assert len(gaps) >= 20, ts
    # A fixed-period sampler's gaps are all one period (give or take the scheduler's
    # milliseconds); these spread over half a period to one and a half. Each bound is
    # missed by all ~30 gaps with a probability under 1e-3.
    assert min(gaps) < 0.85 * INTERVAL < 1.15 * INTERVAL < max(gaps), gaps
