"""offset-pagination: page 49,000 of 1,000,000 products, by OFFSET or by cursor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scenarios.contract import prove

pytestmark = [pytest.mark.scenario, pytest.mark.integration, pytest.mark.services]

FIRST, DEEP = "GET /products/pages (first)", "GET /products/pages (deep)"


def test_offset_pagination_deep_page_cost(
    tmp_path: Path, lab_services: Callable[..., dict[str, str]]
) -> None:
    env = lab_services("postgres")
    # One user: a page's cost, not the time it queued behind a deep page of another user.
    faulty, fixed = prove("offset-pagination", tmp_path, env, duration="12s", users=1)
    ratio = {
        name: s["routes"][DEEP]["p50_ms"] / s["routes"][FIRST]["p50_ms"]
        for name, s in (("faulty", faulty), ("fixed", fixed))
    }
    # The requirement (faults/offset_pagination.py): every page within 2x of the first.
    assert ratio["faulty"] > 2, ratio  # OFFSET 980,000: reads every skipped row
    assert ratio["fixed"] <= 2, ratio  # the cursor seeks: same cost at any depth
