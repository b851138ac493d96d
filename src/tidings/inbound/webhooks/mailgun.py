"""Mailgun's webhooks: ``signature`` (timestamp, token, HMAC-SHA256 of the two under the
webhook signing key) beside ``event-data`` (failed, complained, unsubscribed)."""

import hashlib
import hmac

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks.common import (
    Bounce,
    RecentTokens,
    Refusal,
    WebhookRefused,
    WebhookRequest,
    bounce_of,
    diagnostic_of,
    email_of,
    field,
    forbidden,
    fresh,
    load_json,
    make_event,
    malformed,
    message_id_of,
    raw_of,
    text_field,
)
from tidings.mail.status import BounceKind

PROVIDER = "mailgun"
_KINDS = {"failed": "bounce", "complained": "complaint", "unsubscribed": "unsubscribe"}
#: A failure Mailgun did not even try, because the address is on one of its own lists.
_SUPPRESSED = {
    "suppress-bounce": "bounce",
    "suppress-complaint": "complaint",
    "suppress-unsubscribe": "unsubscribe",
}


def read_mailgun(
    request: WebhookRequest, settings: Settings, tokens: RecentTokens
) -> list[ProviderEvent]:
    """The request's event, verified; a refusal for a bad signature, a stale timestamp or a
    token used before with another body."""
    key = settings.webhook_mailgun_signing_key
    if key is None or not key.get_secret_value():
        raise WebhookRefused(Refusal.unconfigured, "Mailgun webhooks are not configured")
    payload = load_json(request.body)
    timestamp = text_field(payload, "signature", "timestamp")
    token = text_field(payload, "signature", "token")
    given = text_field(payload, "signature", "signature")
    if timestamp is None or token is None or given is None:
        raise WebhookRefused(Refusal.unauthenticated, "the request is not signed")
    expected = hmac.new(
        key.get_secret_value().encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise forbidden("the signature does not match")
    if not fresh(timestamp, request.now):
        raise forbidden("the timestamp is more than 5 minutes away")
    if not tokens.matches(token, request.body, request.now):
        raise forbidden("the token was used before with another event")
    data = field(payload, "event-data")
    if not isinstance(data, dict):
        raise malformed("no event-data")
    event = _event(data)
    return [] if event is None else [event]


def _event(data: dict[str, object]) -> ProviderEvent | None:
    """The event's meaning; None for other events (delivered, opened...) or no address."""
    event_id = text_field(data, "id")
    if event_id is None:
        raise malformed("the event has no id")
    kind = _KINDS.get(text_field(data, "event") or "")
    email = email_of(field(data, "recipient"))
    if kind is None or email is None:
        return None
    bounce = None
    if kind == "bounce":
        suppressed = _SUPPRESSED.get(text_field(data, "reason") or "")
        if suppressed is not None and suppressed != "bounce":
            kind = suppressed
        else:
            bounce = _failure(data) if suppressed is None else Bounce(BounceKind.hard)
    message_id = message_id_of(field(data, "message", "headers", "message-id"))
    return make_event(PROVIDER, event_id, kind, email, raw_of(data), message_id, bounce)


def _failure(data: dict[str, object]) -> Bounce:
    """A failed delivery: permanent (hard, unless the reply says otherwise) or temporary;
    ``espblock`` is the receiving provider blocking us (policy)."""
    code = field(data, "delivery-status", "code")
    reply = code if isinstance(code, int) and 200 <= code < 600 else None
    diagnostic = diagnostic_of(
        str(reply) if reply else None,
        text_field(data, "delivery-status", "message"),
        text_field(data, "delivery-status", "description"),
    )
    provider = BounceKind.soft
    if text_field(data, "severity") == "permanent":
        provider = BounceKind.hard
    if text_field(data, "reason") == "espblock":
        provider = BounceKind.policy
    enhanced = text_field(data, "delivery-status", "enhanced-code")
    return bounce_of(enhanced, diagnostic, provider, reply)
