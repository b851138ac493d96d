"""SendGrid's signed event webhook: ECDSA P-256 over timestamp and body with a key made
here (given as SendGrid shows it, base64 DER, or as PEM); events mapped by kind."""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tidings.config import Settings
from tidings.errors import ConfigError
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks import Refusal, WebhookRefused, WebhookRequest
from tidings.inbound.webhooks.sendgrid import SIGNATURE, TIMESTAMP, read_sendgrid
from tidings.mail.status import BounceKind

KEY = ec.generate_private_key(ec.SECP256R1())


def verification_key(key: ec.EllipticCurvePrivateKey = KEY) -> str:
    """The public key as SendGrid's settings page shows it: base64 of its DER."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_headers(
    body: bytes, key: ec.EllipticCurvePrivateKey = KEY, at: datetime | None = None
) -> dict[str, str]:
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: timestamp}


def sendgrid_event(event: str, email: str, event_id: str, **extra: str) -> dict[str, object]:
    return {
        "email": email,
        "timestamp": 1751007600,
        "smtp-id": "<d-42@messenger.example.ge>",
        "event": event,
        "sg_event_id": event_id,
        "sg_message_id": "sg-message.filter0001",
        **extra,
    }


def read(body: bytes, headers: dict[str, str] | None = None, key: str = "") -> list[ProviderEvent]:
    lowered = {name.lower(): value for name, value in (headers or sendgrid_headers(body)).items()}
    request = WebhookRequest(lowered, body, datetime.now(UTC))
    return read_sendgrid(request, Settings(webhook_sendgrid_public_key=key or verification_key()))


def _refusal(call: Callable[[], object]) -> Refusal:
    with pytest.raises(WebhookRefused) as refused:
        call()
    return refused.value.refusal


def test_a_batch_of_events_is_mapped() -> None:
    events = [
        sendgrid_event("processed", "reader0@example.ge", "sg-0"),
        sendgrid_event(
            "bounce",
            "Reader0@example.ge",
            "sg-1",
            type="bounce",
            status="5.1.1",
            reason="550 5.1.1 unknown user",
        ),
        sendgrid_event(
            "bounce",
            "reader1@example.ge",
            "sg-2",
            type="blocked",
            status="5.0.0",
            reason="550 rejected",
        ),
        sendgrid_event("dropped", "reader2@example.ge", "sg-3", reason="Bounced Address"),
        sendgrid_event("dropped", "reader2@example.ge", "sg-4", reason="Spam Content"),
        sendgrid_event("dropped", "reader2@example.ge", "sg-5", reason="Unsubscribed Address"),
        sendgrid_event("spamreport", "reader3@example.ge", "sg-6"),
        sendgrid_event("group_unsubscribe", "reader4@example.ge", "sg-7"),
    ]
    found = read(json.dumps(events).encode())
    assert [(e.event_id, e.kind, e.email, e.bounce_kind) for e in found] == [
        ("sg-1", "bounce", "reader0@example.ge", BounceKind.hard),
        ("sg-2", "bounce", "reader1@example.ge", BounceKind.policy),
        ("sg-3", "bounce", "reader2@example.ge", BounceKind.hard),
        ("sg-4", "bounce", "reader2@example.ge", BounceKind.policy),
        ("sg-5", "unsubscribe", "reader2@example.ge", None),
        ("sg-6", "complaint", "reader3@example.ge", None),
        ("sg-7", "unsubscribe", "reader4@example.ge", None),
    ]
    assert found[0].status == "5.1.1" and found[0].diagnostic == "550 5.1.1 unknown user"
    assert found[0].message_id == "<d-42@messenger.example.ge>" and b"sg-1" in found[0].raw


def test_a_pem_key_works_too() -> None:
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = json.dumps([sendgrid_event("spamreport", "a@example.ge", "sg-1")]).encode()
    assert len(read(body, key=pem.decode())) == 1


def test_bad_signatures_are_refused() -> None:
    body = json.dumps([sendgrid_event("spamreport", "reader3@example.ge", "sg-6")]).encode()
    headers = sendgrid_headers(body)
    altered = body.replace(b"reader3", b"reader9")
    assert _refusal(lambda: read(altered, headers)) == Refusal.forbidden
    later = {**headers, TIMESTAMP: str(int(headers[TIMESTAMP]) + 1)}
    assert _refusal(lambda: read(body, later)) == Refusal.forbidden
    other = sendgrid_headers(body, ec.generate_private_key(ec.SECP256R1()))
    assert _refusal(lambda: read(body, other)) == Refusal.forbidden
    stale = sendgrid_headers(body, at=datetime.now(UTC) - timedelta(minutes=6))
    assert _refusal(lambda: read(body, stale)) == Refusal.forbidden
    garbled = {**headers, SIGNATURE: "@@@"}
    assert _refusal(lambda: read(body, garbled)) == Refusal.forbidden
    assert _refusal(lambda: read(body, {"X-Other": "1"})) == Refusal.unauthenticated


def test_unconfigured_misconfigured_and_malformed() -> None:
    body = b"[]"
    request = WebhookRequest({}, body, datetime.now(UTC))
    assert _refusal(lambda: read_sendgrid(request, Settings())) == Refusal.unconfigured
    with pytest.raises(ConfigError):
        read(body, key="bm90IGEga2V5")
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigError):
        read(body, key=verification_key(p384))
    assert _refusal(lambda: read(b'{"event": "bounce"}')) == Refusal.malformed
    no_id = json.dumps([{"event": "bounce", "email": "a@example.ge"}]).encode()
    assert _refusal(lambda: read(no_id)) == Refusal.malformed
