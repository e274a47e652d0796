"""blocking-call (seed 1): a synchronous HTTP call inside `async def` freezes the event loop.

Seam: `ModelClient`, how `GET /recommendations/{user_id}` asks the recommendation model
server (the lab's upstream, `GET /recommendations/{user_id}?limit=N`, ~100 ms per answer)
for a user's products (`seams.pick(blocking_call.SCENARIO)`). The model server takes its
~100 ms either way; what differs is whether the worker's event loop serves anything else
meanwhile.

The faulty variant is the line an httpx quick-start gives, `httpx.get(url)`, pasted into
an `async def` route: a synchronous client that waits on its socket with the loop held
(`requests.get`, a boto3 or a sync SDK call do the same). The fixed variant awaits the
app's one `httpx.AsyncClient` (a shared connection pool and a timeout, opened and closed
by the app's lifespan: target_app/api/routes/recommendations.py). Same request, same
answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = [
    "SCENARIO",
    "AsyncModelClient",
    "BlockingModelClient",
    "ModelClient",
    "ModelParams",
    "ModelServer",
]


class ModelParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: int = Field(10, ge=1, le=100, description="recommendations asked for per user")


@dataclass(frozen=True)
class ModelServer:
    """Where the model server is, and the app's client for it (owned by the lifespan)."""

    url: str  # UPSTREAM_URL: through the lab's Toxiproxy, like every link of the app
    http: httpx.AsyncClient  # base_url=url, one connection pool, timeouts set


class ModelClient(Protocol):
    """The seam: wait for the model server's recommendations for a user."""

    async def recommend(self, server: ModelServer, user_id: int) -> list[int]: ...


def _product_ids(response: httpx.Response) -> list[int]:
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return [int(product_id) for product_id in body["product_ids"]]


# --- faulty -----------------------------------------------------------------


class BlockingModelClient:
    """`httpx.get(...)` in `async def`: a sync client on the event loop's thread.

    It opens a connection, sends, and waits for the model's answer without ever
    yielding to the loop: for those ~100 ms the worker serves nothing, not even
    /healthz, and every other request's timers fire late.
    """

    def __init__(self, params: ModelParams) -> None:
        self.items = params.items

    async def recommend(self, server: ModelServer, user_id: int) -> list[int]:
        response = httpx.get(  # the whole worker waits here
            f"{server.url}/recommendations/{user_id}", params={"limit": self.items}
        )
        return _product_ids(response)


# --- fixed ------------------------------------------------------------------


class AsyncModelClient:
    """Await the app's shared `httpx.AsyncClient`: the loop serves others meanwhile.

    One client for the app's lifetime (not one per request): its pool keeps the
    connections to the model server alive, and its timeouts bound the wait. With
    only a synchronous SDK at hand, `await run_in_threadpool(sdk_call)` (or a plain
    `def` route, which FastAPI runs in its threadpool) keeps the loop free as well.
    """

    def __init__(self, params: ModelParams) -> None:
        self.items = params.items

    async def recommend(self, server: ModelServer, user_id: int) -> list[int]:
        response = await server.http.get(
            f"/recommendations/{user_id}", params={"limit": self.items}
        )
        return _product_ids(response)


def _signature(s: Signs) -> Finding | None:
    """A blocking call in async code: the loop lags (healthy p99 < 100 ms) while the
    app hardly uses the CPU (under half a core): it waits, it does not compute."""
    cores = s.number("app_cpu_cores")
    if cores is None or cores >= 0.5:
        return None
    score = strength(s.number("event_loop_lag_p99_ms"), 100.0)
    return finding(
        "blocking-call",
        score,
        (
            Clue("event-loop lag p99", s.number("event_loop_lag_p99_ms"), "< 100", "ms"),
            Clue("cores the app kept busy", cores, "", ""),
        ),
        confirm="profile=py-spy",
    )


SCENARIO: Scenario[ModelClient, ModelParams] = Scenario(
    signature=_signature,
    slug="blocking-call",
    title="Endpoint suddenly slow: a blocking call inside async def",
    seeds=(1,),
    kind="fault",
    summary=(
        "A synchronous `httpx.get` to the model server inside `async def` stalls the event "
        "loop for each call's ~100 ms: every request of the worker waits, even /healthz. "
        "Awaiting the app's shared `httpx.AsyncClient` keeps the loop free."
    ),
    faulty=BlockingModelClient,
    fixed=AsyncModelClient,
    params=ModelParams,
    # The app reaches the upstream (the model server) only through Toxiproxy: UPSTREAM_URL
    # is the proxy's address (lab/topology.py), set only when both run.
    requires=("toxiproxy", "upstream"),
    workload="blocking",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="event_loop_lag_p99_ms",
        op=">",
        # The requirement: a worker's loop runs a due callback within 100 ms (asyncio's
        # own slow-callback warning in debug mode is at 100 ms). A sync call that waits
        # ~100 ms for the model breaks it; an awaited one leaves the loop at a few ms.
        threshold=100.0,
        description="the event loop runs its callbacks over 100 ms late",
    ),
    answers=(
        Answer(
            "Your FastAPI endpoint suddenly becomes slow in production. How will you diagnose it?",
            """\
Look at the event loop first when an async app is slow and its CPU is low. Here
the loop's lag p99 is {faulty.event_loop_lag_p99_ms} ms in the faulty variant against
{fixed.event_loop_lag_p99_ms} ms fixed, and the client p95 {faulty.p95_ms} ms against
{fixed.p95_ms} ms: every request of the worker, `/healthz` included (summary.json `routes`),
waits behind one route's synchronous `httpx.get` to the model server. `py-spy dump --pid
<worker>` shows the main thread in a socket read under `httpx.get`, under the `async def`
route. Reproduce with `make fault=blocking-call compare`, and
`make fault=blocking-call load profile=py-spy` for the flamegraph.""",
        ),
        Answer(
            "How do you check whether the issue is DB latency or code latency?",
            """\
Split the request's time, then look at what the loop does. `Server-Timing` gives
`db`, `upstream` and `app` per response; the upstream's own histogram
(`upstream_request_duration_seconds`) stays at the model's ~100 ms while the client's p95
is {faulty.p95_ms} ms, and the DB share is {faulty.db_time_share}. The missing time is
neither DB nor the model: it is requests queued behind a blocked loop, which
`event_loop_lag_p99_ms` ({faulty.event_loop_lag_p99_ms} ms) measures directly. CPU per
request ({faulty.app_cpu_ms_per_request} ms) rules out code that computes.""",
        ),
        Answer(
            "How do you use async to improve performance here?",
            """\
Only an awaitable wait frees the loop. The fix awaits the app's one shared
`httpx.AsyncClient` (created in the lifespan, a connection pool and a timeout), which brings
the loop lag to {fixed.event_loop_lag_p99_ms} ms and the throughput from {faulty.rps} to
{fixed.rps} req/s with the same answer. When a library has no async client, declare the
route with `def` (FastAPI runs it in its threadpool) or call it through
`run_in_threadpool`; CPU-heavy work needs a process pool instead (cpu-bound).""",
        ),
    ),
    diagnosis="""\
**What you see.** `event_loop_lag_seconds` p99 in the hundreds of ms (report:
event-loop lag plot), and the cheap `/healthz` next to it as slow as the slow
route (summary.json `routes`): the worker serialises everything behind the
blocking call. CPU is low: the worker is waiting, with the loop held.
`upstream_request_duration_seconds{dependency="recommendations"}` stays at the
model's ~100 ms: the model server is not slow, the app waits for it wrongly.

**Find it.** `py-spy dump --pid <worker>` shows the main thread inside a socket
read (`read` in httpcore/_backends/sync.py, under `httpx.get`) under an
`async def` frame (`recommend` in faults/blocking_call.py): a blocking call on
the loop. Under load, `py-spy record` shows the same frames. `PYTHONASYNCIODEBUG=1`
logs callbacks slower than 100 ms with their location.

**How async helps here.** Only when the wait is awaitable: use the async
client (`httpx.AsyncClient`, asyncpg/psycopg async, redis.asyncio), created
once in the app's lifespan and shared, with a timeout, or move the sync call off
the loop with `run_in_threadpool` / `def` routes (FastAPI runs those in a
threadpool). CPU-heavy work needs a process pool or a cache instead (cpu-bound).
""",
)
