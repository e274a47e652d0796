"""The inventory service (inventory/app.py) on the real PostgreSQL, and the intermittent
toxic that partitions the link to it (lab/chaos.py), on the real Toxiproxy.

What the microservice-cascade proof relies on: a reservation is all or nothing, the
order id is its key (a repeat takes nothing twice, also when the repeats race), a
release gives the stock back; and an intermittent toxic opens and closes its windows
and leaves nothing behind. Stock is read from the service's own database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.services]


def _ports(env: dict[str, str]) -> dict[str, int]:
    status = subprocess.run(
        [sys.executable, "-m", "lab.cli", "status", "--json"],
        env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {s["name"]: int(s["port"]) for s in json.loads(status.stdout)["services"]}


def _stock(postgres_port: int) -> dict[int, int]:
    engine = create_engine(f"postgresql+psycopg://lab@127.0.0.1:{postgres_port}/inventory")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT product_id, available FROM stock")).all()
            return {int(p): int(a) for p, a in rows}
    finally:
        engine.dispose()


def test_reservations_are_all_or_nothing_keyed_by_order_and_released(
    lab_services: Callable[..., dict[str, str]],
) -> None:
    ports = _ports(lab_services("postgres", "toxiproxy", "inventory"))
    base, pg = f"http://127.0.0.1:{ports['inventory']}", ports["postgres"]
    with httpx.Client(base_url=base, timeout=10) as inventory:
        restock = {"products": 10, "quantity": 5, "sold_out": [3]}
        assert inventory.put("/_control/stock", json=restock).status_code == 200
        lines = [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]
        first = inventory.post("/reservations", json={"order_id": 7, "lines": lines})
        assert first.status_code == 201 and first.json()["replayed"] is False
        again = inventory.post("/reservations", json={"order_id": 7, "lines": lines[::-1]})
        assert again.status_code == 200 and again.json()["replayed"] is True
        other = inventory.post("/reservations", json={"order_id": 7, "lines": lines[:1]})
        assert other.status_code == 409 and other.json()["detail"]["error"] == "conflict"
        assert _stock(pg)[1] == 3 and _stock(pg)[2] == 4  # taken once

        # One line short: nothing of the order is taken.
        short = [{"product_id": 2, "quantity": 1}, {"product_id": 3, "quantity": 1}]
        refused = inventory.post("/reservations", json={"order_id": 8, "lines": short})
        assert refused.status_code == 409 and refused.json()["error"] == "out_of_stock"
        assert _stock(pg)[2] == 4
        assert inventory.get("/reservations/8").status_code == 404

        # The same order from 8 clients at once: one reservation, its stock taken once.
        race = {"order_id": 9, "lines": [{"product_id": 4, "quantity": 5}]}
        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(lambda _: inventory.post("/reservations", json=race)
                                    .status_code, range(8)))  # fmt: skip
        assert codes == [200] * 7 + [201]
        assert _stock(pg)[4] == 0

        released = inventory.delete("/reservations/7")
        assert released.json()["released"] is True
        assert inventory.delete("/reservations/7").json()["released"] is False
        assert _stock(pg)[1] == 5 and _stock(pg)[2] == 5
        assert inventory.get("/_control/reservations").json()["orders"] == [9]


def test_an_intermittent_toxic_opens_its_windows_and_leaves_nothing(
    lab_services: Callable[..., dict[str, str]],
) -> None:
    """On for 1 s of every 2, for 5 s: the inventory's proxy holds the toxic in some of
    the looks and not in others; after clear_toxics, in none."""
    env = lab_services("postgres", "toxiproxy", "inventory")
    script = textwrap.dedent("""
        import json, time, types
        from faults import Toxic
        from lab.chaos import apply_toxics, clear_toxics
        from lab.services import toxiproxy

        toxic = Toxic("inventory", "timeout", {"timeout": 0}, every_s=2.0, for_s=1.0)
        apply_toxics(types.SimpleNamespace(toxics=(toxic,)))
        looks = []
        end = time.monotonic() + 5
        while time.monotonic() < end:
            looks.append(len(toxiproxy.list_toxics("inventory")))
            time.sleep(0.1)
        clear_toxics()
        time.sleep(1.5)  # a window that opened after the stop would show now
        print(json.dumps({"looks": looks, "after": len(toxiproxy.list_toxics("inventory"))}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, cwd=REPO,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    looks = seen["looks"]
    # Two windows of 1 s in 5 s, each seen in about ten looks; healthy between them.
    assert 0 < looks.count(1) < len(looks), looks
    on_runs = sum(1 for a, b in zip([0, *looks], looks, strict=False) if a == 0 and b == 1)
    assert on_runs >= 2, looks
    assert seen["after"] == 0
