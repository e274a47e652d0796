"""microservice-cascade (seed 50): an order that spans two services and two databases.

Seam: an `OrderPlacement`, what `POST /orders/placements` does with a new order
(its lines priced, its row not yet written): keep it in the shop's database and
reserve its stock in the inventory service's (inventory/app.py, a second process
with a database of its own, reached through Toxiproxy). No transaction spans
both: that is what splitting a monolith gives up.

The faulty variant is the monolith's habit, kept across the network: one local
transaction around the remote call. Insert the order, call the inventory,
commit if it answered. When the answer is lost (the network partitions after
the inventory committed, and the client's timeout fires), the shop rolls its
order back and answers 502, and the stock stays reserved for an order that does
not exist. A customer who tries again reserves it a second time.

The fixed variant is a transactional outbox with a saga's outcome. The order
and the message "reserve its stock" are written in one local transaction
(`outbox_messages`), so neither exists without the other; then the message is
delivered: at once, by the request (a deadline per attempt, tenacity's
backoff with jitter, two attempts), and, if that did not settle it, by the
relay (`deliver_due`, a loop of every app process that takes due messages with
`FOR UPDATE SKIP LOCKED`) until it does. Every delivery carries the order id,
which the inventory uses as the reservation's key, so a delivery repeated after
a lost answer reserves nothing twice. The outcome settles the order, in the
transaction that deletes the message: reserved, it is `confirmed`; out of
stock, it is `cancelled` (the saga's compensation: nothing was taken, so nothing
is given back). A request that could not settle it answers 202 with the order's
URL, `awaiting_stock`; the relay settles it once the network is back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from faults._contract import Answer, Scenario, Symptom, Toxic, Variant
from faults._signs import Clue, Finding, Signs, finding, strength

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.orm import Session

    from target_app.models import Order

__all__ = [
    "AWAITING", "SCENARIO", "InventoryLink", "InventoryUnavailable", "OrderPlacement",
    "OutboxThenReserve", "Placed", "PlacementParams", "ReserveInTransaction", "audit",
    "deliver_due", "placement_counts", "prepare", "reserve", "run_audit",
]  # fmt: skip

log = logging.getLogger("faults.microservice_cascade")

# The order statuses this scenario writes (no seeded order has them).
AWAITING, CONFIRMED, CANCELLED = "awaiting_stock", "confirmed", "cancelled"
TOPIC = "reserve_stock"
# The relay leaves a new message to the request that wrote it for this long: the
# request's own attempts (about a second in all, each under its deadline) end well before.
REQUEST_OWNS_S = 5.0

Outcome = Literal["reserved", "out_of_stock"]


class Placed(NamedTuple):
    """What the route answers: its status code and body."""

    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class InventoryLink:
    """How the shop reaches the inventory service: its address, and the app's pooled
    client (keep-alive connections; no timeout of its own: each caller sets one)."""

    base_url: str
    client: httpx.Client


class InventoryUnavailable(RuntimeError):
    """No answer from the inventory service (refused, cut, timed out, or a 5xx)."""


class OrderPlacement(Protocol):
    """The microservice-cascade seam: keep `order` (lines priced, not yet added to the
    session) and reserve its stock."""

    def place(self, session: Session, inventory: InventoryLink, order: Order) -> Placed: ...


class PlacementParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(
        default=0.5, gt=0, le=30,
        description="fixed: the deadline of each call to the inventory (a reservation "
        "answers in a few ms; half a second without an answer is a network not there)",
    )  # fmt: skip
    attempts: int = Field(
        default=2, ge=1, le=10,
        description="fixed: the request's own attempts (about a second in all) before it "
        "answers 202 and leaves the order to the relay",
    )  # fmt: skip


def _lines(order: Order) -> list[dict[str, int]]:
    return [{"product_id": i.product_id, "quantity": i.quantity} for i in order.items]


def _body(order: Order) -> dict[str, Any]:
    return {"id": order.id, "status": order.status, "total": str(order.total),
            "lines": _lines(order)}  # fmt: skip


# --- faulty -----------------------------------------------------------------


class ReserveInTransaction:
    """The order's transaction held open around the inventory call; rolled back when
    the call fails, whatever the inventory did."""

    def __init__(self, params: PlacementParams) -> None:
        pass

    def place(self, session: Session, inventory: InventoryLink, order: Order) -> Placed:
        import httpx

        session.add(order)
        session.flush()  # the order's id, for the reservation
        try:
            # httpx's module function: a connection per call, its default 5 s timeout.
            response = httpx.post(
                f"{inventory.base_url}/reservations",
                json={"order_id": order.id, "lines": _lines(order)},
            )
        except httpx.HTTPError as exc:
            session.rollback()
            return Placed(502, {"message": f"the inventory service failed: {exc!r}"})
        if response.status_code == 409:
            session.rollback()
            return Placed(409, {"message": "out of stock", "detail": response.json()})
        if response.status_code >= 300:
            session.rollback()
            return Placed(502, {"message": f"the inventory service answered "
                                           f"{response.status_code}"})  # fmt: skip
        order.status = CONFIRMED
        session.commit()
        return Placed(201, _body(order))


# --- fixed ------------------------------------------------------------------


def reserve(inventory: InventoryLink, order_id: int, lines: list[dict[str, int]],
            timeout_s: float, attempts: int = 1) -> Outcome:  # fmt: skip
    """The inventory's answer to "reserve these lines for this order", retried on no
    answer (the same order id each time: a repeat reserves nothing twice)."""
    import httpx
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_random_exponential,
    )

    def attempt() -> Outcome:
        try:
            response = inventory.client.post(
                f"{inventory.base_url}/reservations",
                json={"order_id": order_id, "lines": lines},
                timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 0.5)),
            )
        except httpx.HTTPError as exc:
            raise InventoryUnavailable(f"no answer from the inventory: {exc!r}") from exc
        if response.status_code in (200, 201):
            return "reserved"
        if response.status_code == 409 and response.json().get("error") == "out_of_stock":
            return "out_of_stock"
        raise InventoryUnavailable(f"the inventory answered {response.status_code}")

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.05, max=0.5),
        retry=retry_if_exception_type(InventoryUnavailable),
        reraise=True,
    )
    outcome: Outcome = retrying(attempt)
    return outcome


def _settle(session: Session, order_id: int, outcome: Outcome) -> str | None:
    """The order's status from the reservation's outcome, and its message gone, in the
    caller's transaction; the status set, or None if another delivery settled it."""
    from sqlalchemy import delete, update

    from target_app.models import Order, OutboxMessage

    status = CONFIRMED if outcome == "reserved" else CANCELLED
    settled = session.execute(
        update(Order).where(Order.id == order_id, Order.status == AWAITING)
        .values(status=status).returning(Order.id)
    ).first()  # fmt: skip
    session.execute(
        delete(OutboxMessage).where(OutboxMessage.order_id == order_id,
                                    OutboxMessage.topic == TOPIC)
    )  # fmt: skip
    return status if settled is not None else None


class OutboxThenReserve:
    """The order and its message in one transaction; the message delivered (by the
    request, else by the relay) until the inventory's answer settles the order."""

    def __init__(self, params: PlacementParams) -> None:
        self.params = params

    def place(self, session: Session, inventory: InventoryLink, order: Order) -> Placed:
        from target_app.models import OutboxMessage

        order.status = AWAITING
        session.add(order)
        session.flush()
        lines = _lines(order)
        session.add(OutboxMessage(
            order_id=order.id, topic=TOPIC, payload={"lines": lines},
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=REQUEST_OWNS_S),
        ))  # fmt: skip
        session.commit()  # from here the order will be settled, by this request or the relay
        order_id = order.id
        try:
            outcome = reserve(inventory, order_id, lines, self.params.timeout_s,
                              self.params.attempts)  # fmt: skip
        except InventoryUnavailable as exc:
            log.info("order %s awaits its stock: %s", order_id, exc)
            return Placed(202, _body(order) | {"status_url": f"/orders/{order_id}"})
        _settle(session, order_id, outcome)
        session.commit()
        session.refresh(order)
        if order.status == CANCELLED:
            return Placed(409, {"message": "out of stock", "order": _body(order)})
        return Placed(201, _body(order))


def deliver_due(session: Session, inventory: InventoryLink, timeout_s: float = 1.0,
                limit: int = 20) -> int:  # fmt: skip
    """The relay's step: deliver the due messages (none another process holds), settle
    the orders that got an answer, put the others off with backoff; the count settled.

    The rows stay locked while their calls run: a second relay skips them rather than
    deliver them again (it would be harmless, only wasteful: the order id is the key).
    """
    from sqlalchemy import func, select

    from target_app.models import OutboxMessage

    due = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.topic == TOPIC, OutboxMessage.next_attempt_at <= func.now())
        .order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    ).all()  # fmt: skip
    settled = 0
    for message in due:
        try:
            outcome = reserve(inventory, message.order_id, message.payload["lines"], timeout_s)
        except InventoryUnavailable:
            message.attempts += 1
            # Backoff, capped at 5 s: the network is back within a few seconds
            # here, and a waiting customer would rather hear soon.
            delay = min(0.25 * 2**message.attempts, 5.0)
            message.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
            continue
        _settle(session, message.order_id, outcome)
        settled += 1
    session.commit()
    return settled


def placement_counts(session: Session) -> tuple[dict[str, int], int]:
    """This scenario's orders by status, and the outbox's undelivered messages: what
    the app's /metrics shows while a run goes on."""
    from sqlalchemy import func, select

    from target_app.models import Order, OutboxMessage

    by_status = dict.fromkeys((AWAITING, CONFIRMED, CANCELLED), 0)
    rows = session.execute(
        select(Order.status, func.count()).where(Order.status.in_(list(by_status)))
        .group_by(Order.status)
    ).all()  # fmt: skip
    by_status |= {str(status): int(n) for status, n in rows}
    undelivered = int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)
    return by_status, undelivered


def audit(shop_database_url: str, inventory_url: str) -> dict[str, int]:
    """After a run, from both services' own records: the orders this scenario wrote
    (shop's `orders`, by status) against the inventory's reservations (its
    `GET /_control/reservations`, read from its table).

    - orphan_reservations: stock reserved for an order the shop does not hold as
      confirmed (rolled back, or cancelled);
    - unreserved_orders: confirmed orders with no stock reserved;
    - unsettled_orders: orders still awaiting their stock;
    - inconsistent_orders: the three together.
    """
    import httpx
    from sqlalchemy import create_engine, text

    engine = create_engine(shop_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status FROM orders WHERE status IN (:a, :c, :x)"),
                {"a": AWAITING, "c": CONFIRMED, "x": CANCELLED},
            ).all()
    finally:
        engine.dispose()
    confirmed = {int(r.id) for r in rows if r.status == CONFIRMED}
    awaiting = {int(r.id) for r in rows if r.status == AWAITING}
    ledger = httpx.get(f"{inventory_url}/_control/reservations", timeout=10).raise_for_status()
    reserved = set(ledger.json()["orders"])
    orphans = len(reserved - confirmed - awaiting)
    unreserved = len(confirmed - reserved)
    return {
        "orders_confirmed": len(confirmed),
        "orders_cancelled": sum(1 for r in rows if r.status == CANCELLED),
        "reservations": len(reserved),
        "orphan_reservations": orphans,
        "unreserved_orders": unreserved,
        "unsettled_orders": len(awaiting),
        "inconsistent_orders": orphans + unreserved + len(awaiting),
    }


# --- the run -----------------------------------------------------------------

# The inventory a run starts from: every product of the lab's catalogue in stock,
# plenty of it (the orders' lines, not the stock, are what the run is about),
# but SOLD_OUT products none: the orders that ask for one are refused by the
# inventory in both variants (the saga's "no" answer, settled as cancelled).
STOCK_PER_PRODUCT = 100_000
SOLD_OUT = (1, 2, 3)


def prepare(variant: Variant, database_url: str) -> None:
    """The schema at head (the outbox is migration 0008), no order of an earlier run of
    this scenario in the shop, and a fresh warehouse in the inventory service."""
    import httpx
    from sqlalchemy import create_engine, text

    from lab.topology import app_settings_env
    from target_app.migrate import upgrade

    upgrade(database_url)
    engine = create_engine(database_url)
    statuses = {"a": AWAITING, "c": CONFIRMED, "x": CANCELLED}
    mine = "SELECT id FROM orders WHERE status IN (:a, :c, :x)"
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox_messages"))
            conn.execute(text(f"DELETE FROM order_items WHERE order_id IN ({mine})"), statuses)
            conn.execute(text(f"DELETE FROM payments WHERE order_id IN ({mine})"), statuses)
            conn.execute(text(f"DELETE FROM orders WHERE id IN ({mine})"), statuses)
            products = conn.execute(text("SELECT max(id) FROM products")).scalar_one()
    finally:
        engine.dispose()
    inventory = app_settings_env()["INVENTORY_DIRECT_URL"]
    httpx.put(
        f"{inventory}/_control/stock",
        json={"products": int(products or 1), "quantity": STOCK_PER_PRODUCT,
              "sold_out": list(SOLD_OUT)},
        timeout=30,
    ).raise_for_status()  # fmt: skip


def run_audit(service_env: Mapping[str, str]) -> dict[str, int]:
    """`audit` on the run's services, by their direct addresses (no toxic in the way)."""
    return audit(service_env["DATABASE_DIRECT_URL"], service_env["INVENTORY_DIRECT_URL"])


def _signature(s: Signs) -> Finding | None:
    """A write that calls another service inside its transaction: 5xx answers
    from requests that both write (several queries) and call out over HTTP."""
    if (s.number("db_queries_per_request") or 0.0) < 3 or s.outgoing_http < 10:
        return None
    score = strength(s.number("status_5xx_share"), 0.01)
    return finding(
        "microservice-cascade",
        score,
        (
            Clue("share of 5xx answers", s.number("status_5xx_share"), "< 0.01"),
            Clue("outgoing HTTP calls logged (httpx)", float(s.outgoing_http)),
        ),
    )


SCENARIO: Scenario[OrderPlacement, PlacementParams] = Scenario(
    signature=_signature,
    environment="a partition between services",
    slug="microservice-cascade",
    title="An order across two services: a lost answer leaves the databases disagreeing",
    seeds=(50,),
    kind="network",
    summary=(
        "The shop keeps orders, the inventory service (a second process, its own database) "
        "keeps stock, and the network between them partitions for 2 s of every 6. Holding "
        "the order's transaction around the call rolls orders back whose stock the "
        "inventory reserved; a transactional outbox, a deadline, idempotent retries and a "
        "relay settle every order, confirmed or cancelled, with its stock."
    ),
    faulty=ReserveInTransaction,
    fixed=OutboxThenReserve,
    params=PlacementParams,
    requires=("postgres", "toxiproxy", "inventory"),
    prepare=prepare,
    # The partition, 2 s of every 6: the inventory's answers dropped (the requests
    # still reach it), with no error, until the window ends and Toxiproxy closes the
    # connections it held (its timeout toxic's clean-up): a caller without a shorter
    # deadline waits out the window and gets a closed connection, never the answer.
    toxics=(Toxic("inventory", "timeout", {"timeout": 0}, every_s=6.0, for_s=2.0),),
    workload="placements",
    default_load={"users": 10, "duration": "30s"},
    drains=("outbox_messages",),
    audit=run_audit,
    symptom=Symptom(
        # The requirement: after the run (the relay given time to drain), the two
        # databases agree on every order: each confirmed order holds its stock, no
        # stock is held for an order the shop does not have, none is left unsettled.
        # One disagreement is already an incident (stock sold twice, or never).
        metric="inconsistent_orders",
        op=">",
        threshold=0,
        description="orders on which the shop's and the inventory's databases disagree",
    ),
    diagnosis="""\
**What you see.** 502s on `POST /orders/placements` in bursts, each answered
when the partition ends (its connections closed, the answer lost), and after the run
`orphan_reservations` in summary.json: stock the inventory reserved for orders
the shop rolled back. Nothing in the shop's logs says stock was taken; only the
two databases side by side show it (`lab run microservice-cascade` audits them
after the load: `SELECT id FROM orders WHERE status = 'confirmed'` in the shop
against the inventory's `GET /_control/reservations`).

**The fix.** Write the order and the message "reserve its stock" in one local
transaction (the transactional outbox, `outbox_messages`, migration 0008);
deliver the message with a deadline per attempt and tenacity's backoff with
jitter; give the inventory the order id as the reservation's key, so a repeat
after a lost answer takes nothing twice; let a relay (`FOR UPDATE SKIP LOCKED`,
in every app process) deliver what the request could not; settle the order from
the answer, in the transaction that deletes the message: confirmed, or
cancelled when the inventory says out of stock.
""",
    answers=(
        Answer(
            "You split monolith into microservices.",
            """\
Not with a transaction around the network call: the monolith's `BEGIN; insert order;
reserve stock; COMMIT` becomes, across two services, a local transaction that cannot undo
the other side. In this lab the shop holds orders, a second service (its own process, its
own PostgreSQL database) holds stock, and the network between them partitions for 2 s of
every 6. The shop that holds its transaction open around the call and rolls back when no
answer comes had an error rate of {faulty.error_rate}, and after the run its database and
the inventory's disagreed on
{faulty.inconsistent_orders} orders: {faulty.orphan_reservations} reservations of stock
for orders the shop no longer had. The fixed shop writes the order and an outbox message
in one transaction, delivers the message with a deadline and idempotent retries (the order
id is the reservation's key), and lets a relay deliver what a request could not:
{fixed.inconsistent_orders} disagreements, {fixed.orders_confirmed} orders confirmed with
their stock and {fixed.orders_cancelled} cancelled for lack of it. Reproduce with
`make fault=microservice-cascade compare`.""",
        ),
        Answer(
            "How do you handle distributed transactions?",
            """\
Avoid needing them, then replace them with a saga: a sequence of local transactions, each
in one service, each announced by a message written in the same transaction (the outbox),
with a compensating step for each that can be undone. Two-phase commit across services
holds locks across the network and stops when the coordinator does; it is rarely
available between HTTP services anyway. Here the saga is short: the order is kept as
`awaiting_stock` with its message, the inventory's reservation is the second step, and
the answer settles the order: `confirmed`, or `cancelled` when stock is short (nothing was
taken, so the compensation is only the order's). What makes it safe to repeat is the
idempotency key: the inventory keys the reservation by order id, so the relay can deliver
a message again after any failure and stock is taken once. The lab counts it from both
databases after the run: {fixed.unreserved_orders} orders confirmed without stock,
{fixed.orphan_reservations} reservations without an order.""",
        ),
        Answer(
            "How do you handle network failures?",
            """\
Assume every call can fail in the worst way: the other side did the work and the answer
was lost. Put a deadline on each call: the partition here drops answers without an
error, and a request waits until the window ends and its connection is closed (the
faulty shop's p95 was {faulty.p95_ms} ms; a real partition can outlast httpx's 5 s
default). Retry with backoff and jitter only what is safe to repeat (an idempotency
key), stop after a few attempts and say honestly that the order is pending (202 with
its URL) instead of failing it, and let a background relay finish it once the network
is back. The fixed shop's p95 was {fixed.p95_ms} ms under the same partitions, and
every order it accepted was settled with its stock by the
end of the run.""",
        ),
    ),
)
