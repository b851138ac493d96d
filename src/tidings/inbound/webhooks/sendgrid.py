"""SendGrid's signed event webhook: an ECDSA P-256 signature (SHA-256, base64 DER) over the
timestamp header and the raw body, checked with the verification key SendGrid shows; the
body is a JSON array of events (bounce, dropped, spamreport, unsubscribe...)."""

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tidings.config import Settings
from tidings.errors import ConfigError
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks.common import (
    Bounce,
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

PROVIDER = "sendgrid"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
_KINDS = {
    "bounce": "bounce",
    "dropped": "bounce",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
#: A message SendGrid dropped unsent, by its reason: the address is on one of its lists.
_DROPPED = {
    "bounced address": "bounce",
    "invalid": "bounce",
    "spam reporting address": "complaint",
    "unsubscribed address": "unsubscribe",
}


def public_key(setting: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its setting: base64 DER as SendGrid shows it, or PEM."""
    text = setting.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error):
        raise ConfigError("TIDINGS_WEBHOOK_SENDGRID_PUBLIC_KEY is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("TIDINGS_WEBHOOK_SENDGRID_PUBLIC_KEY is not an ECDSA P-256 key")
    return key


def read_sendgrid(request: WebhookRequest, settings: Settings) -> list[ProviderEvent]:
    """The request's events, verified; a refusal for a bad signature or a stale timestamp."""
    if not settings.webhook_sendgrid_public_key.strip():
        raise WebhookRefused(Refusal.unconfigured, "SendGrid webhooks are not configured")
    key = public_key(settings.webhook_sendgrid_public_key)
    signature = request.header(SIGNATURE)
    timestamp = request.header(TIMESTAMP)
    if not signature or not timestamp:
        raise WebhookRefused(Refusal.unauthenticated, "the request is not signed")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise forbidden("the signature does not match") from None
    if not fresh(timestamp, request.now):
        raise forbidden("the timestamp is more than 5 minutes away")
    items = load_json(request.body)
    if not isinstance(items, list):
        raise malformed("the body is not a list of events")
    return [event for item in items if (event := _event(item)) is not None]


def _event(item: object) -> ProviderEvent | None:
    """One event's meaning; None for the others (processed, delivered, open...)."""
    kind = _KINDS.get(text_field(item, "event") or "")
    email = email_of(field(item, "email"))
    if kind is None or email is None:
        return None
    event_id = text_field(item, "sg_event_id")
    if event_id is None:
        raise malformed("an event has no sg_event_id")
    bounce = None
    if text_field(item, "event") == "dropped":
        reason = text_field(item, "reason") or ""
        kind = _DROPPED.get(reason.lower(), "bounce")
        if kind == "bounce":  # the address is bad, or our message was (policy: not theirs)
            known = reason.lower() in _DROPPED
            bounce = Bounce(BounceKind.hard if known else BounceKind.policy, None, reason or None)
    elif kind == "bounce":
        blocked = text_field(item, "type") == "blocked"
        bounce = bounce_of(
            text_field(item, "status"),
            diagnostic_of(text_field(item, "reason")),
            BounceKind.policy if blocked else BounceKind.hard,
        )
    message_id = message_id_of(field(item, "smtp-id"))
    return make_event(PROVIDER, event_id, kind, email, raw_of(item), message_id, bounce)
