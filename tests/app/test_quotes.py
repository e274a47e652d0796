"""/quotes/{product_id}: shipping quotes (the cpu-bound seam's route)."""

from __future__ import annotations

import heapq

import pytest

from faults import cpu_bound
from tests.app.helpers import Lab

pytestmark = pytest.mark.unit


def expected_cents(product_id: int, zone: int) -> int:
    """The quote written out again, with a Dijkstra of our own over the carrier's network
    (not networkx's): the price of the route to the zone's farthest delivery hub."""
    network = cpu_bound.carrier_network()
    source = cpu_bound.origin_hub(product_id)
    best = {source: 0}
    queue = [(0, source)]
    while queue:
        cost, hub = heapq.heappop(queue)
        if cost > best[hub]:
            continue
        for neighbour, lane in network[hub].items():
            through = cost + lane["cost"]
            if through < best.get(neighbour, through + 1):
                best[neighbour] = through
                heapq.heappush(queue, (through, neighbour))
    return 499 + 3 * max(best[hub] for hub in cpu_bound.zone_hubs(zone))


def test_a_quote_depends_on_product_and_zone(lab: Lab) -> None:
    response = lab.client.get("/quotes/12", params={"zone": 3})
    assert response.status_code == 200
    assert response.json() == {"product_id": 12, "zone": 3, "cents": expected_cents(12, 3)}
    default_zone = lab.client.get("/quotes/12").json()
    assert default_zone == {"product_id": 12, "zone": 1, "cents": expected_cents(12, 1)}
    assert lab.client.get("/quotes/12", params={"zone": 3}).json() == response.json()
    assert default_zone["cents"] != response.json()["cents"]


def test_the_network_is_the_documented_grid() -> None:
    network = cpu_bound.carrier_network()
    side = cpu_bound.GRID_SIDE
    assert network.number_of_nodes() == side * side
    assert network.number_of_edges() == 2 * side * (side - 1)
    assert all(1 <= lane["cost"] <= 40 for _, _, lane in network.edges(data=True))
    covered = [hub for zone in range(1, cpu_bound.ZONES + 1) for hub in cpu_bound.zone_hubs(zone)]
    assert sorted(covered) == list(range(side * side))  # every hub in exactly one zone


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
