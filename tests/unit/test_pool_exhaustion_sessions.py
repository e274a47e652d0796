"""pool-exhaustion in-process: the leak is the pool's own count, and a timeout is a 503.

The app on a copy of the seeded SQLite shop with a pool of one connection: the
pool's own `checkedout()` says who gave their connection back, and QueuePool's
TimeoutError, once the pool is empty, must come back as a clean 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.pool import QueuePool

from tests.app.helpers import Lab, copy_db, lab_settings, open_lab

pytestmark = pytest.mark.unit


@pytest.fixture
def one_connection_lab(seeded_db: str, tmp_path: Path) -> Iterator[Lab]:
    database = copy_db(Path(seeded_db.removeprefix("sqlite:///")), tmp_path / "shop.sqlite")
    with open_lab(lab_settings(tmp_path / "lab", database, db_pool_size=1)) as lab:
        yield lab


def _pool(lab: Lab) -> QueuePool:
    pool = lab.app.state.db.engine.pool
    assert isinstance(pool, QueuePool)
    return pool


def test_the_fixed_dependency_gives_every_connection_back(one_connection_lab: Lab) -> None:
    lab = one_connection_lab
    for order_id in (1, 2, 3, 10_000_000, 4):
        response = lab.client.get(f"/orders/{order_id}/invoice")
        assert response.status_code in (200, 404), response.text
        assert _pool(lab).checkedout() == 0
    # One connection served five requests: each was returned before the next one asked.
    assert _pool(lab).size() == 1


def test_the_unremoved_registry_keeps_the_connection_and_the_next_request_gets_a_503(
    one_connection_lab: Lab,
) -> None:
    lab = one_connection_lab
    with lab.faulty("pool-exhaustion"):
        first = lab.client.get("/orders/1/invoice")
        assert first.status_code == 200, first.text
        # The response is out, and the request's session still holds its connection.
        assert _pool(lab).checkedout() == 1
        _pool(lab)._timeout = 0.2  # pool_timeout, short for the test (SQLite's default: 30 s)
        second = lab.client.get("/orders/2/invoice")
        assert second.status_code == 503, second.text
        assert second.headers["retry-after"] == "1"
        assert "no database connection came free" in second.text
        assert _pool(lab).checkedout() == 1  # still the first request's, for ever
