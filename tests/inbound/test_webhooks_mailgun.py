"""Mailgun: HMAC-SHA256 of timestamp and token under the signing key, a fresh timestamp,
and failed, complained and unsubscribed events mapped."""

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks import Refusal, WebhookRefused, WebhookRequest
from tidings.inbound.webhooks.common import RecentTokens
from tidings.inbound.webhooks.mailgun import read_mailgun
from tidings.mail.status import BounceKind

KEY = "key-mailgun-signing-0123456789abcdef"


def mailgun_body(event: dict[str, object], key: str = KEY, at: datetime | None = None) -> bytes:
    """A webhook body as Mailgun signs it."""
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    token = secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    envelope = {"timestamp": timestamp, "token": token, "signature": signature}
    return json.dumps({"signature": envelope, "event-data": event}).encode()


def failed(
    email: str, event_id: str, *, severity: str = "permanent", **status: object
) -> dict[str, object]:
    return {
        "event": "failed",
        "id": event_id,
        "severity": severity,
        "reason": "bounce",
        "recipient": email,
        "delivery-status": status
        or {"code": 550, "message": "5.1.1 The email account does not exist"},
        "message": {"headers": {"message-id": "d-42@messenger.example.ge"}},
    }


def complained(email: str, event_id: str) -> dict[str, object]:
    return {"event": "complained", "id": event_id, "recipient": email}


def settings() -> Settings:
    return Settings(webhook_mailgun_signing_key=KEY)


def read(body: bytes, tokens: RecentTokens | None = None) -> list[ProviderEvent]:
    request = WebhookRequest({"content-type": "application/json"}, body, datetime.now(UTC))
    return read_mailgun(request, settings(), tokens or RecentTokens())


def _refusal(call: Callable[[], object]) -> Refusal:
    with pytest.raises(WebhookRefused) as refused:
        call()
    return refused.value.refusal


def test_a_permanent_failure_is_a_hard_bounce() -> None:
    [event] = read(mailgun_body(failed("Reader0@example.ge", "mg-1")))
    assert (event.provider, event.event_id, event.kind, event.email) == (
        "mailgun",
        "mg-1",
        "bounce",
        "reader0@example.ge",
    )
    assert (event.bounce_kind, event.status, event.message_id) == (
        BounceKind.hard,
        "5.1.1",
        "<d-42@messenger.example.ge>",
    )
    assert event.diagnostic == "550 5.1.1 The email account does not exist"


def test_temporary_policy_and_suppressed_failures() -> None:
    full = failed("a@example.ge", "mg-2", severity="temporary", code=452, message="mailbox full")
    unclear = failed("a@example.ge", "mg-3", code=550, message="rejected")
    espblock = {**failed("a@example.ge", "mg-4", code=554, message="no"), "reason": "espblock"}
    listed = failed("a@example.ge", "mg-5", code=550, message="5.7.1 listed at Spamhaus")
    kinds = [
        read(mailgun_body(event))[0].bounce_kind for event in (full, unclear, espblock, listed)
    ]
    assert kinds == [BounceKind.soft, BounceKind.hard, BounceKind.policy, BounceKind.policy]
    on_list = {**failed("a@example.ge", "mg-6"), "reason": "suppress-complaint"}
    assert read(mailgun_body(on_list))[0].kind == "complaint"


def test_a_complaint_and_an_unsubscribe() -> None:
    [complaint] = read(mailgun_body(complained("reader1@example.ge", "mg-7")))
    unsubscribed = {"event": "unsubscribed", "id": "mg-8", "recipient": "reader2@example.ge"}
    [unsubscribe] = read(mailgun_body(unsubscribed))
    assert (complaint.kind, complaint.email, complaint.bounce_kind) == (
        "complaint",
        "reader1@example.ge",
        None,
    )
    assert (unsubscribe.kind, unsubscribe.event_id) == ("unsubscribe", "mg-8")


def test_other_events_are_none() -> None:
    delivered = {"event": "delivered", "id": "mg-9", "recipient": "a@example.ge"}
    assert read(mailgun_body(delivered)) == []


def test_bad_signatures_are_refused() -> None:
    body = mailgun_body(failed("reader0@example.ge", "mg-1"))
    signed = json.loads(body)
    signed["signature"]["token"] += "0"
    assert _refusal(lambda: read(json.dumps(signed).encode())) == Refusal.forbidden
    signed["signature"]["token"] = signed["signature"]["token"][:-1]
    signed["signature"]["timestamp"] = str(int(signed["signature"]["timestamp"]) + 1)
    assert _refusal(lambda: read(json.dumps(signed).encode())) == Refusal.forbidden
    other_key = mailgun_body(failed("reader0@example.ge", "mg-1"), key="another-key")
    assert _refusal(lambda: read(other_key)) == Refusal.forbidden
    minutes = timedelta(minutes=6)
    stale = mailgun_body(failed("reader0@example.ge", "mg-1"), at=datetime.now(UTC) - minutes)
    assert _refusal(lambda: read(stale)) == Refusal.forbidden
    future = mailgun_body(failed("reader0@example.ge", "mg-1"), at=datetime.now(UTC) + minutes)
    assert _refusal(lambda: read(future)) == Refusal.forbidden
    unsigned = json.dumps({"event-data": failed("a@example.ge", "mg-1")}).encode()
    assert _refusal(lambda: read(unsigned)) == Refusal.unauthenticated


def test_a_used_token_is_refused_with_another_event() -> None:
    """Mailgun signs the timestamp and token, not the event: a captured request sent again
    with another event must not pass while its timestamp is fresh; the same request again
    (a retry) passes, and its event id makes it change nothing."""
    tokens = RecentTokens()
    body = mailgun_body(failed("reader0@example.ge", "mg-1"))
    assert read(body, tokens)[0].email == "reader0@example.ge"
    altered = body.replace(b"reader0", b"editor").replace(b"mg-1", b"mg-99")
    assert _refusal(lambda: read(altered, tokens)) == Refusal.forbidden
    assert read(body, tokens)[0].event_id == "mg-1"
    assert read(altered)[0].email == "editor@example.ge"  # another process: signature alone


def test_unconfigured_and_malformed() -> None:
    request = WebhookRequest({}, mailgun_body(complained("a@example.ge", "x")), datetime.now(UTC))
    unset = Settings()
    assert _refusal(lambda: read_mailgun(request, unset, RecentTokens())) == Refusal.unconfigured
    assert _refusal(lambda: read(b"not json")) == Refusal.malformed
    no_id = mailgun_body({"event": "complained", "recipient": "a@example.ge"})
    assert _refusal(lambda: read(no_id)) == Refusal.malformed
