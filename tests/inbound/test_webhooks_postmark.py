"""Postmark: basic auth against the configured credentials; Bounce records by type and
SpamComplaint records mapped."""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks import Refusal, WebhookRefused, WebhookRequest
from tidings.inbound.webhooks.postmark import read_postmark
from tidings.mail.status import BounceKind

CREDENTIALS = "postmark:correct horse battery staple"


def basic_auth(credentials: str = CREDENTIALS) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def postmark_record(
    record_type: str, bounce_type: str, email: str, record_id: int, details: str = ""
) -> dict[str, object]:
    return {
        "RecordType": record_type,
        "ID": record_id,
        "Type": bounce_type,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": email,
        "Details": details,
        "BouncedAt": "2025-06-27T09:00:00Z",
    }


def read(record: dict[str, object], headers: dict[str, str] | None = None) -> list[ProviderEvent]:
    body = json.dumps(record).encode()
    request = WebhookRequest(basic_auth() if headers is None else headers, body, datetime.now(UTC))
    return read_postmark(request, Settings(webhook_postmark_credentials=CREDENTIALS))


def _refusal(call: Callable[[], object]) -> Refusal:
    with pytest.raises(WebhookRefused) as refused:
        call()
    return refused.value.refusal


def test_bounces_by_type() -> None:
    hard = postmark_record(
        "Bounce",
        "HardBounce",
        "Reader0@example.ge",
        101,
        "smtp;550 5.1.1 The email account does not exist",
    )
    [event] = read(hard)
    assert (event.provider, event.event_id, event.kind, event.email, event.bounce_kind) == (
        "postmark",
        "101",
        "bounce",
        "reader0@example.ge",
        BounceKind.hard,
    )
    assert event.status == "5.1.1" and event.message_id is None  # Postmark's own id only
    cases = {
        "SoftBounce": BounceKind.soft,
        "Transient": BounceKind.soft,
        "Blocked": BounceKind.policy,
        "BadEmailAddress": BounceKind.hard,
    }
    for number, (bounce_type, kind) in enumerate(cases.items()):
        [found] = read(postmark_record("Bounce", bounce_type, "a@example.ge", 200 + number))
        assert found.bounce_kind == kind, bounce_type
    assert read(postmark_record("Bounce", "AutoResponder", "a@example.ge", 300)) == []
    assert read(postmark_record("Delivery", "", "a@example.ge", 301)) == []


def test_complaints_and_unsubscribes() -> None:
    [complaint] = read(postmark_record("SpamComplaint", "SpamComplaint", "reader1@example.ge", 102))
    [unsubscribe] = read(postmark_record("Bounce", "Unsubscribe", "reader2@example.ge", 103))
    assert (complaint.kind, complaint.email, complaint.event_id) == (
        "complaint",
        "reader1@example.ge",
        "102",
    )
    assert unsubscribe.kind == "unsubscribe"


def test_wrong_or_missing_credentials_are_refused() -> None:
    record = postmark_record("SpamComplaint", "SpamComplaint", "reader1@example.ge", 102)
    assert _refusal(lambda: read(record, basic_auth("postmark:wrong"))) == Refusal.forbidden
    assert _refusal(lambda: read(record, basic_auth(CREDENTIALS + "x"))) == Refusal.forbidden
    assert _refusal(lambda: read(record, {})) == Refusal.unauthenticated
    bearer = {"authorization": "Bearer " + CREDENTIALS}
    assert _refusal(lambda: read(record, bearer)) == Refusal.unauthenticated
    garbled = {"authorization": "Basic !!!"}
    assert _refusal(lambda: read(record, garbled)) == Refusal.unauthenticated


def test_unconfigured_and_malformed() -> None:
    request = WebhookRequest(basic_auth(), b"{}", datetime.now(UTC))
    assert _refusal(lambda: read_postmark(request, Settings())) == Refusal.unconfigured
    no_id = {"RecordType": "Bounce", "Type": "HardBounce", "Email": "a@example.ge"}
    assert _refusal(lambda: read(no_id)) == Refusal.malformed
