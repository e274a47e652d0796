"""The outbox relay: every app process delivers the outbox's due messages.

The fixed order placement (faults/microservice_cascade.py) writes a message in
the transaction of the order it belongs to and tries to deliver it at once; a
message whose delivery did not get an answer waits here. Each process runs one
relay loop (under gunicorn, every worker: `FOR UPDATE SKIP LOCKED` keeps two
relays off one message), on PostgreSQL only (SQLite has no row locks to skip).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from faults.microservice_cascade import InventoryLink, deliver_due
from target_app.db import Database

__all__ = ["IDLE_S", "inventory_link", "relay_outbox"]

log = logging.getLogger("target_app.outbox")

# How often an idle relay looks: a message waits at most this long once due.
IDLE_S = 0.5


def inventory_link(base_url: str) -> InventoryLink:
    """The app's pooled client to the inventory service (keep-alive; each call sets
    its own deadline)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    return InventoryLink(base_url.rstrip("/"), httpx.Client(limits=limits, timeout=None))


def _step(database: Database, link: InventoryLink) -> int:
    with database.sessions() as session:
        return deliver_due(session, link)


async def relay_outbox(database: Database, link: InventoryLink) -> None:
    """Deliver due messages until cancelled; a full batch is followed at once by the next."""
    while True:
        try:
            settled = await asyncio.to_thread(_step, database, link)
        except Exception as exc:  # the database or the network: try again soon
            log.warning("outbox relay step failed: %s", exc)
            settled = 0
        await asyncio.sleep(0 if settled else IDLE_S)
