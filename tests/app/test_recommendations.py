"""/recommendations/{user_id}: the (simulated) model server (the blocking-call seam's route)."""

from __future__ import annotations

import zlib

import pytest

from tests.app.helpers import Lab

pytestmark = pytest.mark.unit


def expected_products(user_id: int, items: int = 10) -> list[int]:
    """The model's answer (faults/blocking_call.py), written out again."""
    seed = zlib.crc32(str(user_id).encode())
    return [(seed + i * 7919) % 10_000 + 1 for i in range(items)]


def test_recommendations_are_the_models_answer(lab: Lab) -> None:
    response = lab.client.get("/recommendations/7")
    assert response.status_code == 200
    assert response.json() == {"user_id": 7, "product_ids": expected_products(7)}
    assert expected_products(7)[:3] == [1347, 9266, 7185]  # the formula itself, pinned


def test_recommendations_need_an_integer_user(lab: Lab) -> None:
    response = lab.client.get("/recommendations/seven")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]
