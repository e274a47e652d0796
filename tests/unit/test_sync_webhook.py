"""sync-webhook's parts that need no service: the provider's events, the summary's
webhook numbers from both ends, and the rate sweep on a route's SLO."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from faults.sync_webhook import EVENT_ID_PATTERN, PAYMENT_REF_PREFIX
from lab.bench.slo_sweep import SWEPT, meets
from lab.measurements import SweepMeasurement, sweep_markdown
from reports.evidence import Evidence
from reports.steps import webhook_numbers
from upstream.app import payment_event


def test_the_provider_derives_each_event_from_its_id_alone() -> None:
    event = payment_event("evt_12_00ff00aa11bb22cc")
    assert event == payment_event("evt_12_00ff00aa11bb22cc")
    assert event is not None and event["data"]["order_id"] == 12
    assert str(event["data"]["payment_id"]).startswith(PAYMENT_REF_PREFIX)
    assert 1.0 <= float(event["data"]["amount"]) < 1000.0
    for bad in ("evt_12", "evt_x_00ff00aa", "pay_12_00ff00aa11bb22cc", "evt_12_ZZff00aa11bb"):
        assert payment_event(bad) is None and not re.match(EVENT_ID_PATTERN, bad), bad
    assert re.match(EVENT_ID_PATTERN, "evt_12_00ff00aa11bb22cc")
    assert EVENT_ID_PATTERN.startswith("^")


def _evidence(tmp_path: Path, deliveries: list[tuple[str, int, str, int]],
              payments: float, events: float) -> Evidence:  # fmt: skip
    rows = [{"start": 1.0, "event_id": e, "attempt": a, "kind": k, "status": s, "seconds": 0.1}
            for e, a, k, s in deliveries]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "webhooks.csv", index=False)
    metrics = pd.DataFrame([
        {"ts": 1.0, "t": 0.0, "name": "webhook_payments", "labels": 'count=payments', "value": 0},
        {"ts": 9.0, "t": 8.0, "name": "webhook_payments", "labels": 'count=payments',
         "value": payments},
        {"ts": 9.0, "t": 8.0, "name": "webhook_payments", "labels": 'count=events',
         "value": events},
    ])  # fmt: skip
    return Evidence(run_dir=tmp_path, metrics=metrics)


def test_the_summary_holds_the_senders_record_against_what_the_database_paid(
    tmp_path: Path,
) -> None:
    deliveries = [
        ("evt_1_aaaaaaaa", 1, "first", 0), ("evt_1_aaaaaaaa", 2, "retry", 200),
        ("evt_2_bbbbbbbb", 1, "first", 200), ("evt_2_bbbbbbbb", 2, "duplicate", 200),
        ("evt_3_cccccccc", 1, "first", 503), ("evt_3_cccccccc", 2, "retry", 503),
    ]  # fmt: skip
    # Three events sent; the database paid two of them, one of those twice.
    ev = _evidence(tmp_path, deliveries, payments=3, events=2)
    out: dict[str, object] = {}
    webhook_numbers(ev, out, [])
    assert out == {
        "webhook_events_sent": 3, "webhook_events_acked": 2, "webhook_redeliveries": 3,
        "webhook_events_lost": 1, "webhook_duplicate_payments": 1,
    }  # fmt: skip


def test_a_run_without_webhooks_has_no_webhook_numbers(tmp_path: Path) -> None:
    out: dict[str, object] = {}
    webhook_numbers(Evidence(run_dir=tmp_path), out, [])
    assert out == {}


def test_the_sweep_judges_a_routes_metric_and_names_it() -> None:
    routes = {"routes": {"POST /webhooks/payments": {"p95_ms": 40.0}}, "p95_ms": 900.0}
    assert meets(routes, 50.0, "p95_ms", "POST /webhooks/payments")
    assert not meets(routes, 50.0, "p95_ms")  # the run's own p95 is not the route's
    assert not meets({"routes": {}}, 50.0, "p95_ms", "POST /webhooks/payments")
    assert "sync-webhook" in SWEPT
    sweep = SweepMeasurement.from_dict("sync-webhook", {
        "variant": "fixed", "slo_p99_ms": 50.0, "step_s": 15.0, "slo_metric": "p95_ms",
        "slo_route": "POST /webhooks/payments",
        "points": [{"rate": 25.0, "rps": 25.0, "p99_ms": 90.0, "value": 12.0,
                    "error_rate": 0.0, "meets": True}],
        "source": "bench", "where": "x", "measured_at": "2026-12-04T00:00:00+00:00",
        "hostname": "vm", "cpus": 2, "git_commit": "abc",
    })  # fmt: skip
    table = "\n".join(sweep_markdown(sweep))
    assert "p95 ms of `POST /webhooks/payments`" in table and "meets p95 <= 50 ms" in table
    assert "| 25.0 | 25.0 | 12.0 | 0 | yes |" in table
