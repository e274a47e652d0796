"""upstream-slow and upstream-flaky against the real upstream, through real Toxiproxy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]


def test_upstream_slow_deadline_and_fallback(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    faulty, fixed = prove("upstream-slow", tmp_path, env, duration="15s", users=20)
    # Without a deadline the checkout inherits the provider's 6 s ...
    assert faulty["p50_ms"] >= 5500
    # ... with it, it answers within the 2 s budget (plus scheduling), never with a 5xx.
    assert fixed["p99_ms"] <= 2300
    assert fixed["error_rate"] == 0
    assert set(fixed["responses_by_status"]) == {"202"}  # the fallback: payment pending


def test_upstream_flaky_retries_with_backoff_stay_bounded(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("upstream")
    faulty, fixed = prove("upstream-flaky", tmp_path, env, duration="15s", users=20)
    # Without retries, errors follow the toxic's toxicity (0.3).
    assert 0.2 <= faulty["error_rate"] <= 0.4
    # With them: >= 99% paid (not merely "pending"), and a bounded number of calls.
    statuses = fixed["responses_by_status"]
    paid = statuses.get("200", 0) / sum(statuses.values())
    assert paid >= 0.99, statuses
    assert 1.0 < fixed["upstream_calls_per_request"] <= 5  # max_attempts
