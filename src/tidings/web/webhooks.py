"""/webhooks/{provider}: bounce and complaint events from sending providers.

Outside the console's CSRF guard: each request proves itself by its provider's signature,
key or credentials (``inbound.webhooks``), then each event is handed to the inbound service,
which stores it once and applies it. The answer is a small count, never the request."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from tidings.inbound.events import ProviderEvent
from tidings.inbound.service import handle_event
from tidings.inbound.webhooks import (
    Refusal,
    WebhookRefused,
    WebhookRequest,
    WebhookState,
    read_events,
)
from tidings.web.deps import WebContext, web_context

router = APIRouter()
Context = Annotated[WebContext, Depends(web_context)]
log = logging.getLogger(__name__)

#: No provider sends more than a few hundred KB in one request (SendGrid batches included).
MAX_WEBHOOK_BYTES = 1024 * 1024
STATUS = {
    Refusal.unconfigured: 404,
    Refusal.unauthenticated: 401,
    Refusal.forbidden: 403,
    Refusal.malformed: 400,
    Refusal.unavailable: 503,
}


def webhook_state(request: Request) -> WebhookState:
    """The app's :class:`WebhookState`: made on first use, or the one a test app was given
    (``app.state.webhooks``) to fetch SNS certificates without AWS."""
    state = getattr(request.app.state, "webhooks", None)
    if state is None:
        state = request.app.state.webhooks = WebhookState()
    assert isinstance(state, WebhookState)
    return state


async def _body(request: Request) -> bytes | None:
    """The body, or None past :data:`MAX_WEBHOOK_BYTES` (read no further)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            return None
    return bytes(body)


@router.post("/webhooks/{provider}")
async def receive(provider: str, request: Request, context: Context) -> JSONResponse:
    body = await _body(request)
    if body is None:
        return JSONResponse({"error": "too_large"}, status_code=413)
    received = WebhookRequest(
        {name.lower(): value for name, value in request.headers.items()}, body, datetime.now(UTC)
    )
    state = webhook_state(request)
    try:
        events = await asyncio.to_thread(read_events, provider, received, context.settings, state)
    except WebhookRefused as refused:
        if refused.refusal is not Refusal.unconfigured:
            log.warning("webhook %s refused: %s", provider[:32], refused.reason)
        return JSONResponse(
            {"error": refused.refusal.value, "reason": refused.reason},
            status_code=STATUS[refused.refusal],
        )
    return JSONResponse(await asyncio.to_thread(_apply, context, events))


def _apply(context: WebContext, events: list[ProviderEvent]) -> dict[str, int]:
    """Each event handed to the inbound service (its own transaction); how many were new."""
    handled = [handle_event(context.db, context.settings, event) for event in events]
    new = sum(1 for one in handled if one.new)
    return {"new": new, "replayed": len(handled) - new}
