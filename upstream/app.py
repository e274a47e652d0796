"""A fake third-party payment and inventory API, itself a FastAPI app.

Business endpoints (what the shop calls):

- `POST /payments` {order_id, amount, idempotency_key?}: charge; 201 with a
  payment id. A repeated idempotency key (in the body or the `Idempotency-Key`
  header) returns the first payment (200, `replayed: true`) and charges nothing;
  the same key with a different order or amount is a 409.
- `GET /payments?idempotency_key=K`: the charge made with that key, or 404: how
  a client that lost the answer (timeout, reset) learns whether it was charged.
- `GET /inventory/{sku}`: stock for a SKU, deterministic per SKU.

Their behaviour (`latency_ms`, `jitter_ms`, `failure_rate`, `failure_status`,
`seed`) is set at start-up by UPSTREAM_LATENCY_MS, UPSTREAM_JITTER_MS,
UPSTREAM_FAILURE_RATE, UPSTREAM_FAILURE_STATUS, UPSTREAM_SEED, and at run time
by `PUT /_control` (only the fields given change; giving `seed` restarts the
random stream, so a run is repeatable). A failure is decided per call from that
seeded stream, after the latency, and nothing is charged.

Control plane (never slowed, never failed): `GET /healthz`, `GET|PUT /_control`,
`GET /_control/stats` (calls received by endpoint and outcome: how the lab
counts retry amplification), `DELETE /_control/stats`, `GET /metrics`
(`upstream_server_calls_total{endpoint, outcome}`), and the ledger:
`GET /_control/charges` (every charge made, with the charge requests that
carried its key, and the orders charged more than once: how the lab proves
"each order charged exactly once" from the provider's own records) and
`DELETE /_control/charges` (forget every charge and key: a fresh provider).

State lives in the process: run one worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from pydantic import BaseModel, Field

from upstream import __version__

__all__ = ["Behaviour", "app", "create_app"]

PAYMENTS = "POST /payments"
PAYMENT_BY_KEY = "GET /payments"
INVENTORY = "GET /inventory/{sku}"
EVENTS = "GET /events/{event_id}"
INVENTORY_FEED = "GET /inventory"


def _stock(sku: str) -> dict[str, Any]:
    digest = zlib.crc32(sku.encode())
    return {
        "sku": sku,
        "available": digest % 500,
        "warehouse": WAREHOUSES[digest % len(WAREHOUSES)],
        "updated": "2026-11-25T00:00:00Z",
        "supplier_note": f"restock cycle {digest % 7} days",
    }


WAREHOUSES = ["ams-1", "fra-2", "lon-1", "par-3"]


@dataclass
class Behaviour:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    failure_rate: float = 0.0
    failure_status: int = 503
    seed: int = 0

    @classmethod
    def from_env(cls) -> Behaviour:
        env = os.environ
        return cls(
            latency_ms=float(env.get("UPSTREAM_LATENCY_MS", 0)),
            jitter_ms=float(env.get("UPSTREAM_JITTER_MS", 0)),
            failure_rate=float(env.get("UPSTREAM_FAILURE_RATE", 0)),
            failure_status=int(env.get("UPSTREAM_FAILURE_STATUS", 503)),
            seed=int(env.get("UPSTREAM_SEED", 0)),
        )


class Control(BaseModel):
    latency_ms: float | None = Field(None, ge=0, le=600_000)
    jitter_ms: float | None = Field(None, ge=0, le=600_000)
    failure_rate: float | None = Field(None, ge=0, le=1)
    failure_status: int | None = Field(None, ge=400, le=599)
    seed: int | None = None


class Charge(BaseModel):
    order_id: int
    amount: Decimal = Field(gt=0, lt=10**10)  # any precision: charged to the cent
    idempotency_key: str | None = Field(None, max_length=255)


class State:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.random = random.Random(behaviour.seed)
        self.calls: Counter[tuple[str, str]] = Counter()
        self.payments: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        # Charge requests that carried each key (the first, then its replays).
        self.requests_by_key: Counter[str] = Counter()

    def reseed(self) -> None:
        self.random = random.Random(self.behaviour.seed)


# Built once: the SKUs of the lab's seeded shop (SKU-00000001 ...).
_FEED = json.dumps([_stock(f"SKU-{i:08d}") for i in range(1, 5001)]).encode()


def create_app(behaviour: Behaviour | None = None) -> FastAPI:
    state = State(behaviour or Behaviour.from_env())
    registry = CollectorRegistry()
    # "server": these are the calls upstream received, not the app's client-side metrics.
    calls_total = PromCounter(
        "upstream_server_calls", "Calls received, by endpoint and outcome",
        ["endpoint", "outcome"], registry=registry,
    )  # fmt: skip
    api = FastAPI(title="upstream: a fake third-party API", version=__version__)
    api.state.upstream = state

    def count(endpoint: str, outcome: str) -> None:
        state.calls[(endpoint, outcome)] += 1
        calls_total.labels(endpoint, outcome).inc()

    async def misbehave(endpoint: str) -> JSONResponse | None:
        """The configured latency, then maybe the configured failure."""
        b = state.behaviour
        jitter = state.random.uniform(-b.jitter_ms, b.jitter_ms) if b.jitter_ms else 0.0
        delay = b.latency_ms + jitter
        fail = b.failure_rate > 0 and state.random.random() < b.failure_rate
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if fail:
            count(endpoint, "injected_failure")
            return JSONResponse(
                {"error": "injected failure", "status": b.failure_status},
                status_code=b.failure_status,
            )
        return None

    @api.post("/payments", status_code=201)
    async def charge(
        body: Charge,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Any:
        if failed := await misbehave(PAYMENTS):
            return failed
        key = body.idempotency_key or idempotency_key
        amount = body.amount.quantize(Decimal("0.01"))
        if key:
            state.requests_by_key[key] += 1
        if key and key in state.by_key:
            first = state.payments[state.by_key[key]]
            if first["order_id"] != body.order_id or Decimal(first["amount"]) != amount:
                count(PAYMENTS, "conflict")
                return JSONResponse(
                    {"error": "idempotency key reused with a different charge", "key": key},
                    status_code=409,
                )
            count(PAYMENTS, "replayed")
            response.status_code = 200
            return {**first, "replayed": True}
        payment_id = f"pay_{len(state.payments) + 1:010d}"
        payment = {
            "id": payment_id,
            "order_id": body.order_id,
            "amount": str(amount),
            "status": "captured",
            "idempotency_key": key,
            "created_at": round(time.time(), 6),
        }
        state.payments[payment_id] = payment
        if key:
            state.by_key[key] = payment_id
        count(PAYMENTS, "ok")
        return {**payment, "replayed": False}

    @api.get("/payments")
    async def payment_by_key(idempotency_key: str) -> Any:
        if failed := await misbehave(PAYMENT_BY_KEY):
            return failed
        payment_id = state.by_key.get(idempotency_key)
        if payment_id is None:
            count(PAYMENT_BY_KEY, "not_found")
            return JSONResponse({"error": "no payment with that key"}, status_code=404)
        count(PAYMENT_BY_KEY, "ok")
        return state.payments[payment_id]

    @api.get("/payments/{payment_id}")
    async def get_payment(payment_id: str) -> Any:
        payment = state.payments.get(payment_id)
        if payment is None:
            return JSONResponse({"error": "no such payment"}, status_code=404)
        return payment

    @api.get("/inventory")
    async def inventory_feed() -> Response:
        """The whole stock feed (5,000 SKUs, ~400 KB): what a careless client downloads."""
        if failed := await misbehave(INVENTORY_FEED):
            return failed
        count(INVENTORY_FEED, "ok")
        return Response(_FEED, media_type="application/json")

    @api.get("/inventory/{sku}")
    async def inventory(sku: str) -> Any:
        if failed := await misbehave(INVENTORY):
            return failed
        count(INVENTORY, "ok")
        return _stock(sku)

    @api.get("/events/{event_id}")
    async def get_event(event_id: str) -> Any:
        """A payment event, as the provider's API gives it to a webhook receiver that
        fetches what a (thin) webhook names instead of trusting its body."""
        event = payment_event(event_id)
        if event is None:
            count(EVENTS, "not_found")
            return JSONResponse({"error": "no such event"}, status_code=404)
        count(EVENTS, "ok")
        return event

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @api.get("/_control")
    async def get_control() -> dict[str, Any]:
        return asdict(state.behaviour)

    @api.put("/_control")
    async def put_control(change: Control) -> dict[str, Any]:
        given = change.model_dump(exclude_none=True)
        for field, value in given.items():
            setattr(state.behaviour, field, value)
        if "seed" in given:
            state.reseed()
        return asdict(state.behaviour)

    @api.get("/_control/stats")
    async def stats() -> dict[str, Any]:
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, outcome), n in sorted(state.calls.items()):
            by_endpoint.setdefault(endpoint, {})[outcome] = n
        return {
            "total": sum(state.calls.values()),
            "by_endpoint": {e: {**o, "total": sum(o.values())} for e, o in by_endpoint.items()},
            "payments": len(state.payments),
        }

    @api.delete("/_control/stats", status_code=204)
    async def reset_stats() -> None:
        state.calls.clear()

    @api.get("/_control/charges")
    async def charges() -> dict[str, Any]:
        by_order = Counter(p["order_id"] for p in state.payments.values())
        return {
            "total": len(state.payments),
            "charges": [
                {**p, "requests": state.requests_by_key.get(p["idempotency_key"] or "", 1)}
                for p in state.payments.values()
            ],
            "orders_charged_more_than_once": {
                str(order): n for order, n in sorted(by_order.items()) if n > 1
            },
        }

    @api.delete("/_control/charges", status_code=204)
    async def forget_charges() -> None:
        state.payments.clear()
        state.by_key.clear()
        state.requests_by_key.clear()

    @api.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return api


app = create_app()


# --- the recommendation model server (blocking-call) ------------------------------------
# What the shop's `GET /recommendations/{user_id}` calls: `GET /recommendations/{user_id}
# ?limit=N` answers after the model's inference time (UPSTREAM_MODEL_LATENCY_MS, 100 ms
# by default), awaited here because it stands for work on the model server's own
# hardware, with product ids that depend only on the user and the limit. Apart from the
# payments' behaviour: `PUT /_control` neither slows nor fails it.

MODEL_LATENCY_MS = float(os.environ.get("UPSTREAM_MODEL_LATENCY_MS", "100"))


# --- payment events (sync-webhook) ---------------------------------------------------
# The provider's record of each event it sends a webhook for. Its ids are
# `evt_<order id>_<token>` and the event follows from the id alone (like the model
# server's answers from the user): the sender of the lab's webhooks (the
# payment_webhooks workload) mints the ids, and the provider, the shop and the
# contract test agree on each event's order and amount without sharing state.
_EVENT_ID = re.compile(r"^evt_(\d{1,9})_([0-9a-f]{8,32})$")


def payment_event(event_id: str) -> dict[str, Any] | None:
    """The event named `event_id`: a captured payment of its order; None if malformed."""
    match = _EVENT_ID.match(event_id)
    if match is None:
        return None
    order_id, token = int(match.group(1)), match.group(2)
    cents = 100 + int(token[:6], 16) % 99_900  # 1.00 to 999.99
    return {
        "id": event_id,
        "type": "payment.captured",
        "data": {"order_id": order_id, "amount": f"{cents // 100}.{cents % 100:02d}",
                 "payment_id": f"pay_evt_{token}"},
    }  # fmt: skip


def recommended_products(user_id: int, limit: int) -> list[int]:
    """The model's answer: `limit` product ids (1..10,000), a function of the user alone."""
    seed = zlib.crc32(str(user_id).encode())
    return [(seed + i * 7919) % 10_000 + 1 for i in range(limit)]


def add_model_server(api: FastAPI, latency_ms: float = MODEL_LATENCY_MS) -> FastAPI:
    @api.get("/recommendations/{user_id}")
    async def recommend(user_id: int, limit: int = 10) -> Any:
        if not 1 <= limit <= 100:
            return JSONResponse({"error": "limit must be within 1..100"}, status_code=422)
        await asyncio.sleep(latency_ms / 1000)
        return {"user_id": user_id, "product_ids": recommended_products(user_id, limit)}

    return api


add_model_server(app)
