"""Webhooks from the payment provider: the sync-webhook seam.

The provider sends thin events (an id and a type) and retries a delivery it
does not see acknowledged; what the receiver does with one is the seam
(faults/sync_webhook.py): apply it before answering, or queue it first. The
provider's API client is one `httpx.Client` per app process, opened and closed
by this router's lifespan.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Literal

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from faults import sync_webhook
from faults.sync_webhook import EventRejected, ProviderUnavailable, QueueUnavailable
from target_app.api.deps import DbSession, SeamsDep, SettingsDep
from target_app.api.errors import DATABASE_DOWN, responses
from target_app.clients.payments import payment_provider
from target_app.etl import NeedsPostgres

__all__ = ["PaymentWebhook", "router"]


@contextlib.asynccontextmanager
async def _provider(app: FastAPI) -> AsyncIterator[None]:
    url = app.state.settings.upstream_url
    app.state.payment_provider = payment_provider(url) if url else None
    try:
        yield
    finally:
        if app.state.payment_provider is not None:
            app.state.payment_provider.close()
        app.state.payment_provider = None


def _configured(request: Request) -> httpx.Client:
    provider: httpx.Client | None = getattr(request.app.state, "payment_provider", None)
    if provider is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "no payment provider configured (UPSTREAM_URL); start the lab's services with "
            "`make up`",
        )
    return provider


class PaymentWebhook(BaseModel):
    """A delivery: the event's id and type, nothing to trust beyond that."""

    model_config = ConfigDict(extra="ignore")  # providers add fields; they must not break us

    id: str = Field(pattern=sync_webhook.EVENT_ID_PATTERN, max_length=64,
                    examples=["evt_42_0f1e2d3c4b5a6978"])  # fmt: skip
    type: Literal["payment.captured"]


router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], lifespan=_provider, responses=responses(422, 500)
)


@router.post(
    "/payments",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(
        400, (422, "the provider knows no such event, or it pays an order that is not ours"),
        (503, "the provider, the queue or the database did not answer: deliver it again"),
        DATABASE_DOWN,
    )
    | {200: {"description": "processed in the request (the sync-webhook fault), or a "
                            "redelivery of an event already received"}},
)  # fmt: skip
def payment_webhook(
    delivery: PaymentWebhook,
    session: DbSession,
    seams: SeamsDep,
    settings: SettingsDep,
    request: Request,
) -> JSONResponse:
    """Receive a payment event: 202 once it is safely queued (the sync-webhook seam).
    A 2xx tells the provider to stop delivering it; anything else, to try again."""
    # Looked up here, not as a dependency: a malformed delivery is a 422 whatever
    # is configured, since no retry of it will ever be accepted.
    provider = _configured(request)
    receiver = seams.pick(sync_webhook.SCENARIO)
    try:
        received = receiver.receive(session, provider, delivery.id, settings.redis_url)
    except EventRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except (ProviderUnavailable, QueueUnavailable, NeedsPostgres) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return JSONResponse(received.body, status_code=received.status_code)
