"""bandwidth-limit: the link to the supplier is thin, and the app downloads too much.

Network condition (both variants): a 256 KB/s bandwidth toxic on the upstream
link, as over a saturated VPN or a cross-region hop. Seam: `AvailabilityFetcher`,
how `GET /products/{product_id}/availability` asks the supplier for stock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from faults._contract import Answer, Scenario, Symptom, Toxic

if TYPE_CHECKING:
    from target_app.clients.upstream import UpstreamClient

__all__ = ["SCENARIO", "AvailabilityFetcher", "FetchOneSku", "FetchWholeFeed"]


class AvailabilityFetcher(Protocol):
    """The seam: one SKU's stock at the supplier, or None when it does not list it."""

    async def availability(self, upstream: UpstreamClient, sku: str) -> dict[str, Any] | None: ...


class AvailabilityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- faulty -----------------------------------------------------------------


class FetchWholeFeed:
    """Download the supplier's whole stock feed (~400 KB) and pick one SKU out of it."""

    def __init__(self, params: AvailabilityParams) -> None:
        pass

    async def availability(self, upstream: UpstreamClient, sku: str) -> dict[str, Any] | None:
        feed = await upstream.inventory_feed()
        return next((item for item in feed if item["sku"] == sku), None)


# --- fixed ------------------------------------------------------------------


class FetchOneSku:
    """Ask for the one SKU needed (~150 bytes): the bytes, not the calls, were the cost."""

    def __init__(self, params: AvailabilityParams) -> None:
        pass

    async def availability(self, upstream: UpstreamClient, sku: str) -> dict[str, Any] | None:
        item: dict[str, Any] = await upstream.inventory(sku)
        return item


SCENARIO: Scenario[AvailabilityFetcher, AvailabilityParams] = Scenario(
    environment="a slow upstream",
    slug="bandwidth-limit",
    title="A thin link to a dependency: downloading the whole feed per request",
    seeds=(1,),
    kind="network",
    summary=(
        "The upstream link drops to 256 KB/s. Fetching the supplier's whole feed per request "
        "takes seconds; asking for the one SKU needed takes milliseconds on the same link."
    ),
    faulty=FetchWholeFeed,
    fixed=FetchOneSku,
    params=AvailabilityParams,
    requires=("toxiproxy", "upstream"),
    toxics=(Toxic("upstream", "bandwidth", {"rate": 256}),),
    workload="availability",
    default_load={"users": 10, "duration": "30s"},
    symptom=Symptom(
        metric="p50_ms",
        op=">",
        threshold=500.0,
        description="each request waits for hundreds of KB over a thin link",
    ),
    answers=(
        Answer(
            "Your FastAPI endpoint suddenly becomes slow in production. How will you diagnose it?",
            """\
Start from the client's numbers, then split the request's time before touching code.
Here the p50 went from {fixed.p50_ms} ms to {faulty.p50_ms} ms (p95 {faulty.p95_ms} ms)
while the app burnt only {faulty.app_cpu_ms_per_request} ms of CPU per request: it waits,
it does not work. The `Server-Timing` header on every response (`upstream;dur=...`) puts
the wait in the supplier call, and `upstream_calls_per_request` is
{faulty.upstream_calls_per_request} in both variants: the app does not call more often,
each call downloads more than the link carries quickly. Toxiproxy's
`toxiproxy_proxy_sent_bytes_total{proxy="upstream"}` confirms it in bytes. Reproduce with
`make fault=bandwidth-limit compare` (needs `make up`).""",
        ),
        Answer(
            "How do you check whether the issue is DB latency or code latency?",
            """\
Compare the DB and upstream shares with CPU. `db_time_share` and
`app_cpu_ms_per_request` are in summary.json and `Server-Timing` splits each response into
`db`, `upstream` and `app`. Code latency shows CPU per request rising with latency; here
CPU stays at {faulty.app_cpu_ms_per_request} ms per request while p50 is
{faulty.p50_ms} ms, and the time is in `upstream`: neither DB nor code, a thin link to a
dependency. `make fault=bandwidth-limit load profile=py-spy` shows the worker idle in
socket reads.""",
        ),
        Answer(
            "How do you use async to improve performance here?",
            """\
Async does not make bytes arrive faster: each request still waits for its download
at 256 KB/s. What `async def` with a shared `httpx.AsyncClient` buys is that the worker
serves other requests while one waits, instead of holding a thread. The fix is to
download less: ask the supplier for the one SKU (the fixed variant; p50 {fixed.p50_ms} ms,
{ratio.p50_ms} times less than the whole feed), compress (`Accept-Encoding: gzip`), cache
reference data, and bound the wait with a deadline (upstream-slow).""",
        ),
    ),
    diagnosis="""\
**What you see.** p50 in seconds while CPU is idle; Server-Timing puts the
time in `upstream`; Toxiproxy's `toxiproxy_proxy_sent_bytes_total{proxy="upstream"}`
(Grafana: "Lab overview" -> Toxiproxy traffic) is orders of magnitude above the
request count times a reasonable payload.

**Slow API response: DB latency or code latency? (seed 1)** Neither: the
endpoint became slow because a dependency's link thinned. Server-Timing
(`upstream;dur=...` on every response) puts the time in the upstream call, and
both variants make one upstream call per request (`upstream_calls_per_request`):
so it is not how often the app calls but how much it downloads each time.
Async does not shorten the wait (the bytes arrive at the link's rate), but
because the route is `async def`, the worker serves other requests while each
one waits instead of blocking on it.

**Fix.** Bandwidth is a budget like latency: measure bytes per request, ask
for what you need (a filter, a field list, a per-item endpoint), compress
(`Accept-Encoding: gzip`) and cache reference data. Then bound the wait with a
deadline (see upstream-slow).
""",
)
