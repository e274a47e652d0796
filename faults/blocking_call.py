"""blocking-call (seed 1): a synchronous call inside `async def` freezes the event loop.

Seam: `ModelClient`, the recommendation client of `GET /recommendations/{user_id}`
(`seams.pick(blocking_call.SCENARIO)`). The model server answers in ~100 ms either way;
what differs is whether the worker's event loop can serve anything meanwhile.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Scenario, Symptom

__all__ = ["SCENARIO", "AsyncModelClient", "BlockingModelClient", "ModelClient", "ModelParams"]


class ModelParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(100, ge=0, le=10_000, description="the model server's latency")
    items: int = Field(10, ge=1, le=100, description="recommendations per answer")


class ModelClient(Protocol):
    """The seam: how the route waits for the model server's recommendations for a user."""

    async def recommend(self, user_id: int) -> list[int]: ...


def _recommend(user_id: int, items: int) -> list[int]:
    seed = zlib.crc32(str(user_id).encode())
    return [(seed + i * 7919) % 10_000 + 1 for i in range(items)]


# --- faulty -----------------------------------------------------------------


class BlockingModelClient:
    """A synchronous SDK (requests, boto3, a DB driver) awaited by nobody: it blocks the loop."""

    def __init__(self, params: ModelParams) -> None:
        self.latency = params.latency_ms / 1000
        self.items = params.items

    async def recommend(self, user_id: int) -> list[int]:
        time.sleep(self.latency)  # the whole worker waits here
        return _recommend(user_id, self.items)


# --- fixed ------------------------------------------------------------------


class AsyncModelClient:
    """An awaitable client (httpx.AsyncClient, an async driver): the loop serves others meanwhile.

    With only a synchronous SDK at hand, `await run_in_threadpool(sdk_call)` (or a
    plain `def` route) gives the same effect.
    """

    def __init__(self, params: ModelParams) -> None:
        self.latency = params.latency_ms / 1000
        self.items = params.items

    async def recommend(self, user_id: int) -> list[int]:
        await asyncio.sleep(self.latency)
        return _recommend(user_id, self.items)


SCENARIO: Scenario[ModelClient, ModelParams] = Scenario(
    slug="blocking-call",
    title="Endpoint suddenly slow: a blocking call inside async def",
    seeds=(1,),
    kind="fault",
    summary=(
        "`time.sleep`-like blocking inside `async def` stalls the event loop: every request "
        "of the worker waits, even /healthz. Awaiting an async client keeps the loop free."
    ),
    faulty=BlockingModelClient,
    fixed=AsyncModelClient,
    params=ModelParams,
    workload="blocking",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="event_loop_lag_p99_ms",
        op=">",
        threshold=100.0,
        description="the event loop runs its callbacks over 100 ms late",
    ),
    diagnosis="""\
**What you see.** `event_loop_lag_seconds` p99 in the hundreds of ms (report:
event-loop lag plot), and the cheap `/healthz` next to it as slow as the slow
route (summary.json `routes`): the worker serialises everything behind the
blocking call. CPU is low: the worker is waiting, with the loop held.

**Find it.** `py-spy dump --pid <worker>` shows the main thread inside
`time.sleep` (or a socket read) under an `async def` frame: a blocking call on
the loop. Under load, `py-spy record` shows the same frame at the top.
`PYTHONASYNCIODEBUG=1` logs callbacks slower than 100 ms with their location.

**How async helps here.** Only when the wait is awaitable: use the async
client (`httpx.AsyncClient`, asyncpg/psycopg async, redis.asyncio), or move the
sync call off the loop with `run_in_threadpool` / `def` routes (FastAPI runs
those in a threadpool). CPU-heavy work needs a process pool instead (cpu-bound).
""",
)
