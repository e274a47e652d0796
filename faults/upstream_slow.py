"""upstream-slow (seed 6): the API must answer in 2 s, the payment provider takes 6 s.

Network condition (both variants): a 6 s latency toxic on the upstream link.
Seam: the deadline policy around every upstream call, a `CallPolicy`
(target_app/clients/upstream.py), used by `POST /orders/{order_id}/pay` and
by its status URL, `GET /orders/{order_id}/payment`.

The fallback is followed up, not just answered: the 202 names a status URL
(body and `Location`), a background follow-up (`PendingCharges` in
target_app/clients/upstream.py) resolves the charge with the provider by the
same idempotency key (`GET /payments?idempotency_key=`, then the charge with
that key if the provider never got it) and records it, and the status URL
reports it. The contract test holds every order the shop accepted against
the provider's own ledger (`GET /_control/charges`): each charged exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Scenario, Symptom, Toxic
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from target_app.clients.upstream import CallPolicy

__all__ = ["SCENARIO", "DeadlineParams", "DeadlinePolicy", "WaitForeverPolicy"]

T = TypeVar("T")


class DeadlineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadline_seconds: float = Field(
        2.0, gt=0, le=60, description="fixed: give up on the provider after this long"
    )


# --- faulty -----------------------------------------------------------------


class WaitForeverPolicy:
    """Await the provider for as long as it takes: the request inherits its 6 s."""

    def __init__(self, params: DeadlineParams) -> None:
        pass

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await attempt()


# --- fixed ------------------------------------------------------------------


class DeadlinePolicy:
    """Cancel the call at the deadline; the route answers with its fallback instead."""

    def __init__(self, params: DeadlineParams) -> None:
        self.deadline = params.deadline_seconds

    async def call(self, dependency: str, attempt: Callable[[], Awaitable[T]]) -> T:
        # Here, not at the top: listing the catalogue never imports the app.
        from target_app.clients.upstream import UpstreamUnavailable

        try:
            async with asyncio.timeout(self.deadline):
                return await attempt()
        except TimeoutError:
            raise UpstreamUnavailable(
                f"{dependency} did not answer within {self.deadline:g} s"
            ) from None


def _signature(s: Signs) -> Finding | None:
    """An upstream that takes seconds and no deadline on it: both the upstream
    calls and the clients wait over a second."""
    up = s.number("upstream_p50_ms")
    score = min(strength(up, 1000.0), strength(s.number("p50_ms"), 1000.0))
    return finding(
        "upstream-slow",
        score,
        (
            Clue("median upstream call time", up, "< 1000", "ms"),
            Clue("client p50", s.number("p50_ms"), "< 1000", "ms"),
        ),
    )


SCENARIO: Scenario[CallPolicy, DeadlineParams] = Scenario(
    signature=_signature,
    environment="a slow upstream",
    slug="upstream-slow",
    title="API must answer in 2 s, the external API takes 6 s (no timeout)",
    seeds=(6,),
    kind="network",
    summary=(
        "The payment provider answers in 6 s. Without a deadline every checkout takes 6 s; "
        "with a 2 s asyncio timeout and a fallback (202, payment pending, a status URL, a "
        "follow-up by idempotency key) it takes 2 s, no 5xx, and every order is charged once."
    ),
    faulty=WaitForeverPolicy,
    fixed=DeadlinePolicy,
    params=DeadlineParams,
    requires=("toxiproxy", "upstream"),
    toxics=(Toxic("upstream", "latency", {"latency": 6000, "jitter": 0}),),
    workload="checkout",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="p99_ms",
        op=">",
        threshold=3000.0,
        description="checkout p99 follows the provider's 6 s instead of the 2 s budget",
    ),
    diagnosis="""\
**What you see.** Checkout p99 at ~6 s (the provider's latency) while CPU is
idle; `upstream_request_duration_seconds` by `dependency="payments"` shows the
same 6 s, and the Server-Timing header puts it in `upstream`, not `db` or `app`.
With the fix, p99 is ~2 s, the answer is `202 payment_pending`, and the
`outcome="cancelled"` series counts the calls given up.

**Async timeout.** `async with asyncio.timeout(2.0): await client.post(...)`
(Python 3.11+; `asyncio.wait_for` before) cancels the call at the deadline. Set
it from the budget: the API's 2 s minus your own work, and also set the HTTP
client's connect/read timeouts so a dead socket cannot outlive the deadline.

**Fallback.** Answer what is true: `202 Accepted` with `status: payment_pending`
and a way to learn the outcome: here a status URL, `GET /orders/{id}/payment`,
in the body and the `Location` header, with `Retry-After: 1`. A background
follow-up confirms with the provider using the same idempotency key: it asks
for the charge by key and, if the provider never received it (the deadline or
an open circuit stopped it before it was sent), submits it with that key, so
a charge that did arrive is never made twice. It records the outcome, which
the status URL reports (200 paid, or 202 still pending). Check it from the
provider's side: `curl $UPSTREAM_DIRECT_URL/_control/charges` lists one charge
per order and `orders_charged_more_than_once` stays empty. The follow-ups live
in the app's process and shutting down waits for them (bounded); to survive a
crash, keep the pending charge in a table or a queue (an outbox) and run the
same loop from there. For reads (inventory), serve the last known value
marked stale.
""",
    answers=(
        Answer(
            question=(
                "Your API must respond within 2 seconds but external API takes 6 seconds. "
                "How do you handle it?"
            ),
            answer="""\
No code can make the provider faster, so the API must stop waiting for it.
Give the call a deadline inside the 2 s budget. When it expires, answer what is
true: "accepted, payment pending, ask here". Then finish the job in the
background, with the same idempotency key so the charge is made once.

`make fault=upstream-slow compare` puts 6 s of latency on the upstream link in
both variants.

- **Faulty (`WaitForeverPolicy`):** every checkout inherits the provider's
  time. p50 is {faulty.p50_ms} ms and p99 {faulty.p99_ms} ms. Throughput is
  {faulty.rps} req/s, because each user waits.
- **Fixed (`DeadlinePolicy`):** a 2 s `asyncio.timeout` and a 202 fallback.
  p99 is {fixed.p99_ms} ms, and the proof requires at most 2.3 s: the budget
  plus scheduling. The error rate is {fixed.error_rate}, and throughput
  {fixed.rps} req/s.

After the run, the proof reads the provider's own ledger: every order the shop
accepted was charged exactly once, none lost and none twice.

A closed load understates the faulty tail, because users stop sending while
they wait. `rate=N` (the open model) shows the queue a real crowd would build.
""",
        ),
        Answer(
            question="How do you implement async timeout?",
            answer="""\
Wrap the call: `async with asyncio.timeout(2.0): await client.post(...)`
(Python 3.11 and later; `asyncio.wait_for` before). That is `DeadlinePolicy`.
At the deadline the awaiting task is cancelled, httpx drops the connection,
and the policy raises `UpstreamUnavailable` for the route to fall back on.

- **Set it from the budget:** the API's 2 s minus your own work. Retries go
  *inside* the deadline: in `pay_order` it wraps upstream-flaky's retries.
- **Client timeouts too:** also set the HTTP client's own limits
  (`httpx.Timeout(connect=..., read=..., pool=...)`). This lab's client leaves
  them to the policy on purpose.
- **No thread-based timeouts:** for a sync client in a thread, a timeout
  around the thread does not stop the thread. Use an async client, or the sync
  client's own timeouts.

In Grafana, "Lab upstream dependencies", the panel "Upstream calls by outcome"
counts the calls given up as `outcome="cancelled"`. In the faulty run, the
panel "Upstream latency p50 / p95 / p99" shows the provider's full 6 s. The
client's p99 is {fixed.p99_ms} ms with the deadline and {faulty.p99_ms} ms
without it.
""",
        ),
        Answer(
            question="How do you design a fallback response?",
            answer="""\
Never claim an outcome you do not know. A payment that timed out may or may not
have been charged. The fixed route answers:

- **The status:** `202 Accepted` with `status: payment_pending` and a reason.
- **Where to ask:** the status URL `GET /orders/ID/payment`, in the body and in
  `Location`, with `Retry-After: 1`.

Then it *follows up*. A background task (`PendingCharges`) asks the provider
for the charge by idempotency key. If the provider never got it, it submits the
charge with that key, and it records the outcome. The status URL then answers
200 paid, or 202 while still pending. Because the key is the same, a charge
that did arrive is never made twice. The test checks this against the
provider's ledger after the run.

The follow-ups live in the app's process, and shutdown waits for them. To
survive a crash, keep pending charges in a table or queue (an outbox) and run
the same loop from there. The lab does not persist them.

For reads, such as stock or a price quote, the fallback is the last known value
marked as stale, or a degraded answer without the optional part.

The fixed run's p99 of {fixed.p99_ms} ms includes the fallback. Its responses
are all 200 or 202, which summary.json lists under `responses_by_status`.
""",
        ),
    ),
)
