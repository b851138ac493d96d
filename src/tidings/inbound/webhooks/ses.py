"""Amazon SES's bounce and complaint notifications, delivered through an SNS topic.

The SNS envelope is verified first (topic allowed, certificate address pinned, signature);
a SubscriptionConfirmation is then confirmed, a Notification's SES event read: one event
per bounced or complaining recipient."""

import json

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks.common import (
    RAW_CAP,
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
    message_id_of,
    text_field,
)
from tidings.inbound.webhooks.sns import SnsHttp, verify_signature
from tidings.mail.status import BounceKind

PROVIDER = "ses"
_BOUNCE_TYPES = {
    "Permanent": BounceKind.hard,
    "Transient": BounceKind.soft,
    "Undetermined": BounceKind.soft,
}


def topic_arns(settings: Settings) -> set[str]:
    return {arn.strip() for arn in settings.webhook_ses_topic_arns.split(",") if arn.strip()}


def read_ses(request: WebhookRequest, settings: Settings, sns: SnsHttp) -> list[ProviderEvent]:
    """The SNS message's SES events, verified; a subscription confirmed (no events)."""
    allowed = topic_arns(settings)
    if not allowed:
        raise WebhookRefused(Refusal.unconfigured, "SES webhooks are not configured")
    message = load_json(request.body)
    if not isinstance(message, dict):
        raise malformed("the body is not an SNS message")
    if "Signature" not in message or "SigningCertURL" not in message:
        raise WebhookRefused(Refusal.unauthenticated, "the SNS message is not signed")
    if text_field(message, "TopicArn") not in allowed:
        raise forbidden("the TopicArn is not one of TIDINGS_WEBHOOK_SES_TOPIC_ARNS")
    kind = text_field(message, "Type")
    header = request.header("x-amz-sns-message-type")
    if header is not None and header != kind:
        raise malformed("the message type header and body disagree")
    certificate = sns.certificate(str(message.get("SigningCertURL")))
    verify_signature(message, certificate, request.now)
    if kind == "SubscriptionConfirmation":
        sns.confirm(text_field(message, "SubscribeURL"))
        return []
    if kind != "Notification":
        return []  # UnsubscribeConfirmation: nothing to do (we never resubscribe by ourselves)
    return ses_events(message, request.body[:RAW_CAP])


def ses_events(message: dict[str, object], raw: bytes) -> list[ProviderEvent]:
    """One event per recipient of an SES Bounce or Complaint notification (event
    publishing's ``eventType`` or the identity notification's ``notificationType``)."""
    message_id = text_field(message, "MessageId")
    body = message.get("Message")
    if message_id is None or not isinstance(body, str):
        raise malformed("the SNS notification has no MessageId or Message")
    try:
        event = json.loads(body)
    except ValueError:
        raise malformed("the SES notification is not JSON") from None
    kind = text_field(event, "eventType") or text_field(event, "notificationType")
    original = _original_message_id(event)
    if kind == "Bounce":
        recipients = field(event, "bounce", "bouncedRecipients")
        provider_kind = _BOUNCE_TYPES.get(text_field(event, "bounce", "bounceType") or "")
    elif kind == "Complaint":
        recipients = field(event, "complaint", "complainedRecipients")
        provider_kind = None
    else:
        return []  # Delivery, Send, Open...: not ours to act on
    if not isinstance(recipients, list):
        raise malformed(f"the {kind} has no recipients")
    found = []
    for index, recipient in enumerate(recipients):
        email = email_of(field(recipient, "emailAddress"))
        if email is None:
            continue
        event_id = message_id if len(recipients) == 1 else f"{message_id}:{index}"
        if kind == "Complaint":
            found.append(make_event(PROVIDER, event_id, "complaint", email, raw, original))
            continue
        bounce = bounce_of(
            text_field(recipient, "status"),
            text_field(recipient, "diagnosticCode"),
            provider_kind or BounceKind.soft,
        )
        found.append(make_event(PROVIDER, event_id, "bounce", email, raw, original, bounce))
    return found


def _original_message_id(event: object) -> str | None:
    """Our Message-ID, from the headers SES passes on (commonHeaders, or the full list when
    "include original headers" is on)."""
    common = message_id_of(field(event, "mail", "commonHeaders", "messageId"))
    if common is not None:
        return common
    headers = field(event, "mail", "headers")
    for header in headers if isinstance(headers, list) else []:
        if (text_field(header, "name") or "").lower() == "message-id":
            return message_id_of(field(header, "value"))
    return None
