"""Postmark's bounce and spam-complaint webhooks, behind HTTP basic auth (the user and
password are set in the webhook's URL on Postmark's side)."""

import base64
import binascii
import hmac

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks.common import (
    Refusal,
    WebhookRefused,
    WebhookRequest,
    bounce_of,
    email_of,
    field,
    forbidden,
    load_json,
    make_event,
    malformed,
    raw_of,
    text_field,
)
from tidings.mail.status import BounceKind

PROVIDER = "postmark"
#: Postmark's bounce types that mean something for the reader or the sender; the others
#: (AutoResponder, Subscribe, AddressChange, OpenRelayTest, ...) change nothing.
_BOUNCE_TYPES = {
    "HardBounce": BounceKind.hard,
    "BadEmailAddress": BounceKind.hard,
    "SoftBounce": BounceKind.soft,
    "Transient": BounceKind.soft,
    "DnsError": BounceKind.soft,
    "Blocked": BounceKind.policy,
    "DMARCPolicy": BounceKind.policy,
}


def read_postmark(request: WebhookRequest, settings: Settings) -> list[ProviderEvent]:
    """The request's event, its credentials checked; a refusal without them."""
    credentials = settings.webhook_postmark_credentials
    if credentials is None or not credentials.get_secret_value():
        raise WebhookRefused(Refusal.unconfigured, "Postmark webhooks are not configured")
    given = _basic_credentials(request.header("Authorization"))
    if given is None:
        raise WebhookRefused(Refusal.unauthenticated, "no basic auth credentials")
    if not hmac.compare_digest(given, credentials.get_secret_value().encode()):
        raise forbidden("the credentials do not match")
    record = load_json(request.body)
    if not isinstance(record, dict):
        raise malformed("the body is not a JSON object")
    event = _event(record)
    return [] if event is None else [event]


def _basic_credentials(header: str | None) -> bytes | None:
    """``user:password`` of an ``Authorization: Basic ...`` header, as bytes."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        return None


def _event(record: dict[str, object]) -> ProviderEvent | None:
    """A Bounce or SpamComplaint record's meaning; None for other records and types."""
    record_type = text_field(record, "RecordType")
    if record_type not in {"Bounce", "SpamComplaint"}:
        return None
    event_id = text_field(record, "ID")
    if event_id is None:
        raise malformed("the record has no ID")
    email = email_of(field(record, "Email"))
    bounce_type = text_field(record, "Type") or ""
    if email is None:
        return None
    raw = raw_of(record)
    if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
        return make_event(PROVIDER, event_id, "complaint", email, raw)
    if bounce_type == "Unsubscribe":
        return make_event(PROVIDER, event_id, "unsubscribe", email, raw)
    provider_kind = _BOUNCE_TYPES.get(bounce_type)
    if provider_kind is None:
        return None
    details = text_field(record, "Details") or text_field(record, "Description")
    bounce = bounce_of(None, details, provider_kind)
    return make_event(PROVIDER, event_id, "bounce", email, raw, None, bounce)
