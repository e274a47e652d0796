"""in-process-scheduler: APScheduler in each of 2 gunicorn workers, every tick sent by
both (faulty) vs claimed with a Redis lock per tick and sent once (fixed).

The sends are counted in PostgreSQL after each run, from the digests' own rows (one
per send, with the sending process), not from any counter of the app.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.scenarios.contract import assert_symptoms, direct_database_url, run_variant

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

SLUG = "in-process-scheduler"
WORKERS = 2  # the scenario's app_workers


def _sends_per_tick(url: str) -> dict[int, list[str]]:
    """Each tick that was sent, with the processes that sent it, as PostgreSQL holds them."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT tick, array_agg(sent_by ORDER BY id) AS senders FROM sales_digests"
                    " WHERE job = 'sales-digest' GROUP BY tick ORDER BY tick"
                )
            )
            return {int(tick): list(senders) for tick, senders in rows}
    finally:
        engine.dispose()


def test_in_process_scheduler_sends_each_tick_once_per_worker_and_the_lock_once(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres", "redis")
    url = direct_database_url()
    # Each variant's `prepare` empties sales_digests: the sends are counted after each.
    # 20 s: ten ticks of the schedule (one every 2 s), each counted per sender.
    faulty = run_variant(SLUG, False, tmp_path / "faulty", env, duration="20s")
    faulty_sends = _sends_per_tick(url)
    fixed = run_variant(SLUG, True, tmp_path / "fixed", env, duration="20s")
    fixed_sends = _sends_per_tick(url)
    assert_symptoms(SLUG, faulty, fixed)

    # Faulty: every worker's scheduler sends every tick, once each (max_instances=1).
    assert all(len(set(s)) == len(s) <= WORKERS for s in faulty_sends.values()), faulty_sends
    # While both workers run (a tick sent twice, first to last: the workers start and
    # stop a moment apart), each tick is sent by both; and they did run side by side.
    doubled = [tick for tick, senders in faulty_sends.items() if len(senders) == WORKERS]
    assert doubled, faulty_sends
    span = range(doubled[0], doubled[-1] + 1)
    assert [tick for tick in span if len(faulty_sends.get(tick, [])) != WORKERS] == []
    assert len({sender for tick in span for sender in faulty_sends[tick]}) == WORKERS

    # Fixed: each tick from the first to the last once, none lost to the lock.
    assert fixed_sends, "the fixed variant sent no digest"
    ticks = sorted(fixed_sends)
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), ticks
    assert {tick: s for tick, s in fixed_sends.items() if len(s) != 1} == {}
