"""sync-webhook: payment webhooks applied in the request vs queued first and applied
once by a consumer, at the same offered rate (open model).

Both ends are counted from outside the seam after each run: the sender's record
(`webhooks.csv`, loadtests/workloads/payment_webhooks.py: every delivery, its
event, what came back) and PostgreSQL's payments, one per event paid, read
directly (not through Toxiproxy). The events are the sender's own: each is paid
by exactly one provider reference (`pay_evt_<token>`), so a payment row per
reference is the truth of what the shop applied.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from faults.sync_webhook import PAYMENT_REF_PREFIX
from tests.scenarios.contract import assert_symptoms, direct_database_url, run_variant

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

SLUG = "sync-webhook"


def _deliveries(out: Path, variant: str) -> list[dict[str, str]]:
    (run_dir,) = [d for d in out.iterdir() if d.is_dir() and f"{SLUG}-{variant}" in d.name]
    with (run_dir / "webhooks.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _payments_by_event(url: str) -> Counter[str]:
    """The shop's payments per event: its provider reference carries the event's token."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT provider_ref, count(*) FROM payments WHERE provider_ref LIKE :p"
                     " GROUP BY provider_ref"), {"p": f"{PAYMENT_REF_PREFIX}%"},
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    return Counter({str(ref).removeprefix(PAYMENT_REF_PREFIX): int(n) for ref, n in rows})


def _token(event_id: str) -> str:
    return event_id.rsplit("_", 1)[1]


def _measure(out: Path, variant: str, summary: dict[str, Any]) -> dict[str, Any]:
    deliveries = _deliveries(out, variant)
    payments = _payments_by_event(direct_database_url())
    events = {_token(d["event_id"]) for d in deliveries}
    redelivered = {_token(d["event_id"]) for d in deliveries if d["kind"] != "first"}
    measured = {
        "events": len(events),
        "redelivered": len(redelivered),
        "lost": len(events - set(payments)),
        "applied_twice": sum(1 for n in payments.values() if n > 1),
        "redelivered_applied_once": sum(1 for t in redelivered if payments.get(t) == 1),
        "unknown": len(set(payments) - events),
    }
    print(f"{SLUG} {variant}: {measured}")
    # The summary's own numbers say the same as the database read here.
    assert summary["webhook_events_sent"] == measured["events"]
    assert summary["webhook_events_lost"] == measured["lost"]
    return measured


def test_inline_processing_acks_late_and_pays_twice_queue_first_pays_once(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres", "redis", "upstream")
    faulty_summary = run_variant(SLUG, False, tmp_path, env)
    faulty = _measure(tmp_path, "faulty", faulty_summary)
    fixed_summary = run_variant(SLUG, True, tmp_path, env)
    fixed = _measure(tmp_path, "fixed", fixed_summary)
    assert_symptoms(SLUG, faulty_summary, fixed_summary)
    for measured in (faulty, fixed):
        assert measured["unknown"] == 0, measured  # nothing paid that was not sent
        assert measured["redelivered"] > 0, measured  # the sender did redeliver
    # Faulty: every redelivery is applied again, a second payment for one capture.
    assert faulty["applied_twice"] > 0, faulty
    # Fixed: every event delivered is paid, exactly once, redelivered ones included.
    assert fixed["lost"] == 0 and fixed["applied_twice"] == 0, fixed
    assert fixed["redelivered_applied_once"] == fixed["redelivered"], fixed
