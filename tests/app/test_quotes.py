"""/quotes/{product_id}: shipping quotes (the cpu-bound seam's route)."""

from __future__ import annotations

import pytest

from tests.app.helpers import Lab

pytestmark = pytest.mark.unit

DEFAULT_ITERATIONS = 150_000  # cpu-bound's `iterations` default: part of the answer


def expected_cents(product_id: int, zone: int, iterations: int = DEFAULT_ITERATIONS) -> int:
    """The carrier-route simulation of faults/cpu_bound.py, written out again: the answer
    is a function of (product, zone) alone."""
    cost = product_id * 31 + zone
    for step in range(iterations):
        cost = (cost * 1_103_515_245 + step) % 2_147_483_647
    return cost % 5_000 + 499


def test_a_quote_depends_on_product_and_zone(lab: Lab) -> None:
    response = lab.client.get("/quotes/12", params={"zone": 3})
    assert response.status_code == 200
    assert response.json() == {"product_id": 12, "zone": 3, "cents": expected_cents(12, 3)}
    default_zone = lab.client.get("/quotes/12").json()
    assert default_zone == {"product_id": 12, "zone": 1, "cents": expected_cents(12, 1)}
    assert lab.client.get("/quotes/12", params={"zone": 3}).json() == response.json()


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/quotes/12?zone=0", ["query", "zone"]),
        ("/quotes/12?zone=11", ["query", "zone"]),
        ("/quotes/twelve", ["path", "product_id"]),
    ],
)
def test_a_quote_refuses_bad_input(lab: Lab, path: str, where: list[str]) -> None:
    response = lab.client.get(path)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == where
