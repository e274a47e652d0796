"""blocking-call's two variants against a real model server: does the loop run meanwhile?

Counted, not timed: a ticker task runs on the same event loop as the call, and the
test counts the ticks that happen while the call is in progress. A sync call never
yields, so none can; an awaited one yields for the model's whole answer time.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from faults.blocking_call import AsyncModelClient, BlockingModelClient, ModelParams, ModelServer
from tests.app.test_recommendations import expected_products, running_model_server

pytestmark = pytest.mark.unit

LATENCY_MS = 100.0  # the model server's answer time here: 20 ticker periods


async def _ticks_during_call(faulty: bool, url: str) -> tuple[int, list[int]]:
    client = BlockingModelClient(ModelParams()) if faulty else AsyncModelClient(ModelParams())
    inside = False
    ticks_inside = 0

    async def ticker() -> None:
        nonlocal ticks_inside
        while True:
            await asyncio.sleep(0.005)
            ticks_inside += inside

    async with httpx.AsyncClient(base_url=url, timeout=5.0) as http:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)  # the ticker is running
        inside = True
        answer = await client.recommend(ModelServer(url=url, http=http), 7)
        inside = False
        task.cancel()
    return ticks_inside, answer


def test_the_sync_call_holds_the_loop_and_the_awaited_one_frees_it() -> None:
    with running_model_server(latency_ms=LATENCY_MS) as url:
        faulty_ticks, faulty_answer = asyncio.run(_ticks_during_call(True, url))
        fixed_ticks, fixed_answer = asyncio.run(_ticks_during_call(False, url))
    assert faulty_answer == fixed_answer == expected_products(7)
    assert faulty_ticks == 0  # not one callback of the loop ran during the sync call
    assert fixed_ticks > 0  # the loop kept running while the model answered
