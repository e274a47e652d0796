"""upstream-slow and upstream-flaky against the real upstream, through real Toxiproxy.

What was charged is read from the provider's own ledger (`GET /_control/charges`
on the fake provider, reached directly, not through the app) and what the shop
accepted from the workload's `checkouts.csv` (the client's record), never from
what the seam returns.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab import topology
from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def _port(port: int, env: dict[str, str]) -> int:
    """A port of the test services: topology's, moved from this process's offset to theirs."""
    return port - topology.OFFSET + int(env["LAB_PORT_OFFSET"])


def provider_url(env: dict[str, str]) -> str:
    return f"http://{topology.HOST}:{_port(topology.LINKS['upstream'].direct_port, env)}"


def fresh_provider(env: dict[str, str]) -> httpx.Client:
    """The provider's control plane, with no charge and no misbehaviour left from before."""
    client = httpx.Client(base_url=provider_url(env), timeout=10)
    assert client.delete("/_control/charges").status_code == 204
    client.put("/_control", json={"latency_ms": 0, "failure_rate": 0})
    return client


def checkouts(out: Path, slug: str, variant: str) -> list[dict[str, str]]:
    (run_dir,) = [d for d in out.iterdir() if d.is_dir() and f"{slug}-{variant}" in d.name]
    with (run_dir / "checkouts.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def orders_with(rows: list[dict[str, str]], *statuses: str) -> set[int]:
    return {int(r["order_id"]) for r in rows if r["step"] == "pay" and r["status"] in statuses}


def charges_by_order(ledger: dict[str, Any]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for charge in ledger["charges"]:
        counts[charge["order_id"]] = counts.get(charge["order_id"], 0) + 1
    return counts


def test_upstream_slow_deadline_and_fallback(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    provider = fresh_provider(env)
    faulty, fixed = prove("upstream-slow", tmp_path, env, duration="15s", users=20)
    # Without a deadline the checkout inherits the provider's 6 s ...
    assert faulty["p50_ms"] >= 5500
    # ... with it, it answers within the 2 s budget (plus scheduling), never with a 5xx.
    assert fixed["p99_ms"] <= 2300
    assert fixed["error_rate"] == 0
    # Paying answered the fallback, every time; polling its status URL 202 or 200.
    rows = checkouts(tmp_path, "upstream-slow", "fixed")
    assert {r["status"] for r in rows if r["step"] == "pay"} == {"202"}, rows[:5]
    assert set(fixed["responses_by_status"]) <= {"200", "202"}, fixed["responses_by_status"]

    # The provider's own ledger, after the run (the app's shut-down waits for its
    # follow-ups): every order the shop accepted is charged exactly once.
    ledger = provider.get("/_control/charges").json()
    charged = charges_by_order(ledger)
    assert ledger["orders_charged_more_than_once"] == {}  # none twice
    accepted = orders_with(rows, "202")
    # The faulty run paid some orders with the same keys: those prove nothing here.
    paid_before = orders_with(checkouts(tmp_path, "upstream-slow", "faulty"), "200")
    followed = accepted - paid_before
    # Every user's first checkout at least: the check is not over an empty set.
    assert len(followed) >= 20, (len(accepted), len(paid_before))
    lost = sorted(o for o in followed if charged.get(o) != 1)
    assert lost == [], f"{len(lost)} of {len(followed)} accepted orders not charged once: {lost}"
    # The status URL resolved some of them within the run (the follow-up took
    # the provider's 6 s, twice when it had to charge): the client saw "paid".
    resolved = [r for r in rows if r["step"] == "resolved" and r["outcome"] == "paid"]
    assert resolved, "no pending payment resolved through the status URL"
    print(
        f"upstream-slow ledger: {ledger['total']} charges, {len(accepted)} orders accepted "
        f"(202), {len(followed)} checked ({len(paid_before)} paid in the faulty run), "
        f"{len(resolved)} resolved through the status URL within the run"
    )


def test_upstream_flaky_retries_with_backoff_stay_bounded(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    provider = fresh_provider(env)
    faulty, fixed = prove("upstream-flaky", tmp_path, env, duration="15s", users=20)
    # Without retries, errors follow the toxic's toxicity (0.3).
    assert 0.2 <= faulty["error_rate"] <= 0.4
    # With them: >= 99% paid (not merely "pending"), and a bounded number of calls.
    statuses = fixed["responses_by_status"]
    paid = statuses.get("200", 0) / sum(statuses.values())
    assert paid >= 0.99, statuses
    assert 1.0 < fixed["upstream_calls_per_request"] <= 5  # max_attempts
    # Retried charges carried one idempotency key: the provider charged each order once.
    ledger = provider.get("/_control/charges").json()
    assert ledger["orders_charged_more_than_once"] == {}
    charged = charges_by_order(ledger)
    paid_orders = orders_with(checkouts(tmp_path, "upstream-flaky", "fixed"), "200")
    assert paid_orders and all(charged.get(o) == 1 for o in paid_orders)
    requests = sum(c["requests"] for c in ledger["charges"])
    print(
        f"upstream-flaky ledger: {ledger['total']} charges for {requests} charge requests; "
        f"{len(paid_orders)} orders paid in the fixed run, each charged once"
    )
