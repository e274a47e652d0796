"""bandwidth-limit: the link to the supplier is thin, and the app downloads too much.

Network condition (both variants): a 256 KB/s bandwidth toxic on the upstream
link, as over a saturated VPN or a cross-region hop. Seam: `AvailabilityFetcher`,
how `GET /products/{product_id}/availability` asks the supplier for stock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from faults._contract import Scenario, Symptom, Toxic

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
