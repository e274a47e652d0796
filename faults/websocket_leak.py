"""websocket-leak (seed 16): live order status over WebSockets, a registry per process.

Seam: `OrderFeed`, behind `WS /orders/{id}/live` (a client follows one order)
and `POST /orders/{id}/status` (the warehouse reports a change, which every
client following that order is sent); target_app/api/routes/live.py.

The faulty variant is the first version that works in a demo: a dict of
order id -> sockets in the process. Its clean-up sits after the receive loop,
which only a client saying "bye" leaves; a client that closes its tab, loses
its network or navigates away ends the loop with WebSocketDisconnect, and the
socket stays in the registry for the life of the worker (with everything it
references: its scope, its protocol object, its buffers). A change is sent
only to the sockets of the process that received the POST: with gunicorn's 2
workers, a client connected to the other worker misses it.

The fixed variant removes the socket in a `finally` (whatever ended the
connection), relies on the server's protocol pings (uvicorn's
`ws_ping_interval` / `ws_ping_timeout`: a half-open connection that stops
answering is closed, which ends its loop too), and publishes each change on
Redis (pub/sub, channel `shop:orders:<id>`): every worker listens, with one
subscription per process, and forwards to its own clients of that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError

from faults._contract import Answer, Scenario, Symptom
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from starlette.websockets import WebSocket

__all__ = ["SCENARIO", "FeedUnavailable", "LocalRegistry", "OrderFeed", "RedisFanout"]

log = logging.getLogger("faults.websocket_leak")
CHANNELS = "shop:orders:"


Greeting = Callable[[], Awaitable[dict[str, Any]]]


class FeedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedUnavailable(RuntimeError):
    """No Redis to publish on or to listen to: the live feed cannot work across workers."""


class OrderFeed(Protocol):
    """The seam: who is following which order, and how a change reaches them."""

    async def follow(
        self, order_id: int, websocket: WebSocket, greeting: Greeting, redis: Redis | None
    ) -> None:
        """Register the (accepted) socket, send it `await greeting()` (the order's state
        now), and serve it until the client is gone. Registered first, then greeted: a
        change made after the state was read is then one the socket is sent."""
        ...

    async def publish(self, order_id: int, event: dict[str, Any], redis: Redis | None) -> None:
        """Send `event` to every client following `order_id`, on whichever worker."""
        ...


# --- faulty -----------------------------------------------------------------


class LocalRegistry:
    """This process's sockets, cleaned up only when a client says goodbye."""

    def __init__(self, params: FeedParams) -> None:
        self.sockets: dict[int, list[WebSocket]] = {}

    async def follow(
        self, order_id: int, websocket: WebSocket, greeting: Greeting, redis: Redis | None
    ) -> None:
        self.sockets.setdefault(order_id, []).append(websocket)
        await websocket.send_json(await greeting())
        while True:
            # A disconnect raises WebSocketDisconnect here, past the clean-up below.
            if await websocket.receive_text() == "bye":
                break
        self.sockets[order_id].remove(websocket)

    async def publish(self, order_id: int, event: dict[str, Any], redis: Redis | None) -> None:
        for websocket in self.sockets.get(order_id, []):
            try:
                await websocket.send_json(event)
            except Exception:  # a closed socket: skipped, and kept
                continue


# --- fixed ------------------------------------------------------------------


class RedisFanout:
    """Sockets removed however they end; changes fanned out to every worker by Redis."""

    def __init__(self, params: FeedParams) -> None:
        self.sockets: dict[int, set[WebSocket]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def follow(
        self, order_id: int, websocket: WebSocket, greeting: Greeting, redis: Redis | None
    ) -> None:
        # Subscribed, then registered, then greeted: a change published once the
        # client has its greeting reaches it.
        await self._listen_once(self._redis(redis))
        self.sockets.setdefault(order_id, set()).add(websocket)
        try:
            await websocket.send_json(await greeting())
            while await websocket.receive_text() != "bye":
                pass
        finally:  # a goodbye, a disconnect, a failed ping, a cancelled task alike
            followers = self.sockets.get(order_id)
            if followers is not None:
                followers.discard(websocket)
                if not followers:
                    del self.sockets[order_id]

    async def publish(self, order_id: int, event: dict[str, Any], redis: Redis | None) -> None:
        try:
            await self._redis(redis).publish(f"{CHANNELS}{order_id}", json.dumps(event))
        except RedisError as exc:
            raise FeedUnavailable(f"the live feed's Redis did not answer: {exc!r}") from exc

    @staticmethod
    def _redis(redis: Redis | None) -> Redis:
        if redis is None:
            raise FeedUnavailable("the live feed needs Redis to reach every worker: set REDIS_URL")
        return redis

    async def _listen_once(self, redis: Redis) -> None:
        """One subscription per process, started by its first follower, who waits until
        it is in place: a change published right after the follower's greeting arrives."""
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen(redis), name="order-feed")
        listening = asyncio.ensure_future(self._listening.wait())
        done, _ = await asyncio.wait({listening, self._listener}, return_when="FIRST_COMPLETED")
        listening.cancel()
        if self._listener in done:  # it failed before it subscribed
            failure = self._listener.exception()
            raise FeedUnavailable(f"the live feed could not subscribe: {failure!r}")

    async def _listen(self, redis: Redis) -> None:
        async with redis.pubsub() as pubsub:
            await pubsub.psubscribe(f"{CHANNELS}*")
            self._listening.set()
            async for message in pubsub.listen():
                if message["type"] != "pmessage":
                    continue
                order_id = int(message["channel"].rsplit(b":", 1)[1])
                data = message["data"].decode()
                for websocket in list(self.sockets.get(order_id, ())):
                    with contextlib.suppress(Exception):  # its own loop removes it
                        await websocket.send_text(data)


def _signature(s: Signs) -> Finding | None:
    """Connections that end leave their tasks and buffers behind: RSS climbs with
    the traffic while some clients fail (refused or dropped) - unlike a cache that
    grows, which fails nobody."""
    slope = s.number("rss_slope_mb_per_10k_requests")
    second = s.number("rss_second_half_mb") or 0.0
    err = s.number("error_rate") or 0.0
    if (s.number("requests") or 0.0) < 500 or second < 2.0 or not 0.005 <= err < 0.2:
        return None
    score = strength(slope, 10.0)
    return finding(
        "websocket-leak",
        score,
        (
            Clue("app RSS growth per 10k requests after warm-up", slope, "< 10", "MB"),
            Clue("client error rate (connections refused or dropped)", err, "< 0.005"),
        ),
        confirm="profile=memray",
    )


SCENARIO: Scenario[OrderFeed, FeedParams] = Scenario(
    signature=_signature,
    slug="websocket-leak",
    title="Live order status over WebSockets: a registry that leaks and stays in its worker",
    seeds=(16,),
    kind="fault",
    summary=(
        "WS /orders/{id}/live keeps each socket in a dict of its worker, removed only on a "
        "client's 'bye': every disconnect leaks one, and a change POSTed to the other worker "
        "never reaches the client. Fixed: removed in a finally, protocol pings, and every "
        "change fanned out to all workers through Redis pub/sub."
    ),
    faulty=LocalRegistry,
    fixed=RedisFanout,
    params=FeedParams,
    requires=("redis",),
    workload="live_orders",
    app_workers=2,
    default_load={"users": 8, "duration": "30s"},
    profile_hint="memory",
    symptom=Symptom(
        # The requirement: a change of an order reaches every client following it,
        # whichever worker each is connected to. Each change the load POSTs is a `WS
        # update` request, failed when its follower did not receive it within 2 s;
        # above 1% of them is the fault.
        metric="error_rate",
        route="WS update",
        op=">",
        threshold=0.01,
        description="status changes miss the clients connected to another worker",
    ),
    answers=(
        Answer(
            "You need live order status updates. How do you design a WebSocket endpoint?",
            """\
One socket per client following an order (`WS /orders/{id}/live`): accept, send the
current status at once, then push each change; the change itself comes in through the API
(`POST /orders/{id}/status`) and is published, not sent from the request that made it. The
faulty version keeps a dict of sockets in the worker: with 2 workers about half the changes
never reached their follower, because the POST landed on the other worker (the symptom
above: the share of `WS update` requests that failed). The fixed one publishes on Redis
and every worker forwards to its own clients: every change delivered, at
{fixed.rps} requests/s against {faulty.rps} (each missed change made its client wait 2 s).
Send the state on connect, after registering the socket, so a client that reconnects
catches up and misses nothing in between; authenticate the socket (a
cookie, or a token in the first message, not in the URL); keep a REST endpoint for the
current state. Reproduce with
`make fault=websocket-leak compare`.""",
        ),
        Answer(
            "How do you handle disconnects?",
            """\
Remove the socket whatever ended it: in a `finally` around the receive loop, not after it.
A disconnect raises `WebSocketDisconnect` out of `receive_text()`, so the faulty clean-up
after the loop never runs, and every closed tab stays in the registry with its scope and
protocol objects, about 18 KB each here: over the run's connect/disconnect cycles the
faulty workers grew by {faulty.rss_growth_mb} MB, the fixed ones by {fixed.rss_growth_mb}
MB. Clients that vanish without a close frame (a phone losing its
network) are found by protocol pings: uvicorn sends one every `ws_ping_interval` (20 s) and
closes a socket that does not answer within `ws_ping_timeout` (20 s), which ends its loop.
A send that fails is skipped; the socket's own loop removes it. Clients reconnect with
backoff and get the current state first.""",
        ),
        Answer(
            "How to scale WebSockets?",
            """\
Every process holds only its own sockets, so a change must reach all of them: a broker
(Redis pub/sub here; NATS, Kafka or a managed service at larger scale) with one
subscription per process, not per socket. A load balancer then needs no sticky sessions
for correctness (only for the upgrade's long connection), and workers can be added or
restarted. Mind the per-process limits (file descriptors, memory per socket, one event loop
per core), drain sockets on deploy (clients reconnect to the new workers), and keep the
messages small: a fan-out of N clients is N sends.""",
        ),
    ),
    diagnosis="""\
**What you see.** Some clients never get live updates (about (workers - 1) /
workers of them), and refreshing "fixes" it; the workers' memory grows with
every connection ever made and only a restart brings it back.

**Find it.** `lab run websocket-leak`: `error_rate` in the report (the missed
updates, by request name); RSS keeps climbing in the report's memory plot;
`lab run websocket-leak --profile memray` shows what the leaked sockets hold.

**Fix.** Clean up in `finally`; rely on protocol pings for half-open
connections; publish changes through Redis pub/sub (one subscription per
process) so that every worker forwards them to its own clients.

**Measured.** The page's "Measured" block and the answers above carry the numbers of the
lab's latest run of both variants (`make fault=websocket-leak compare`).
""",
)
