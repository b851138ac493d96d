"""POST /webhooks/{provider} over real HTTP (the real app under uvicorn), on SQLite and
PostgreSQL: each provider's signed bounce suppresses the reader and its complaint
unsubscribes and suppresses them; a badly signed request is refused with nothing stored; a
replayed event changes nothing; an unconfigured provider is not there."""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from tests.builders import newsletter, subscribers
from tests.inbound.test_webhooks_mailgun import KEY as MAILGUN_KEY
from tests.inbound.test_webhooks_mailgun import complained, failed, mailgun_body
from tests.inbound.test_webhooks_postmark import CREDENTIALS, basic_auth, postmark_record
from tests.inbound.test_webhooks_sendgrid import (
    SIGNATURE,
    sendgrid_event,
    sendgrid_headers,
    verification_key,
)
from tests.inbound.test_webhooks_ses import (
    CERT_URL,
    TOPIC,
    SnsSigner,
    bounce_event,
    complaint_event,
    notification,
)
from tests.webserver import serve
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    InboundMessage,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from tidings.inbound.webhooks import WebhookState
from tidings.web.app import create_app

#: A signed request: (body, headers) for a reader's address and an event id.
Signed = tuple[bytes, dict[str, str]]


def _ses(signer: SnsSigner) -> tuple[Callable[[str, str], Signed], Callable[[str, str], Signed]]:
    def bounce(email: str, event_id: str) -> Signed:
        gone = {"emailAddress": email, "status": "5.1.1", "diagnosticCode": "550 5.1.1 unknown"}
        message = signer.sign(notification(bounce_event(gone), event_id))
        return json.dumps(message).encode(), {"x-amz-sns-message-type": "Notification"}

    def complaint(email: str, event_id: str) -> Signed:
        message = signer.sign(notification(complaint_event(email), event_id))
        return json.dumps(message).encode(), {}

    return bounce, complaint


def _mailgun_bounce(email: str, event_id: str) -> Signed:
    return mailgun_body(failed(email, event_id)), {"content-type": "application/json"}


def _mailgun_complaint(email: str, event_id: str) -> Signed:
    return mailgun_body(complained(email, event_id)), {"content-type": "application/json"}


def _sendgrid(event: str, **extra: str) -> Callable[[str, str], Signed]:
    def signed(email: str, event_id: str) -> Signed:
        body = json.dumps([sendgrid_event(event, email, event_id, **extra)]).encode()
        return body, sendgrid_headers(body)

    return signed


def _postmark(record_type: str, bounce_type: str) -> Callable[[str, str], Signed]:
    def signed(email: str, event_id: str) -> Signed:
        record = postmark_record(record_type, bounce_type, email, int(event_id.split("-")[-1]))
        return json.dumps(record).encode(), basic_auth()

    return signed


@dataclass
class Site:
    base: str
    signer: SnsSigner
    db: Database

    def post(self, provider: str, signed: Signed) -> httpx.Response:
        body, headers = signed
        return httpx.post(f"{self.base}/webhooks/{provider}", content=body, headers=headers)

    def senders(self, provider: str) -> tuple[Callable[[str, str], Signed], ...]:
        """The provider's signed bounce and complaint."""
        if provider == "ses":
            return _ses(self.signer)
        if provider == "mailgun":
            return _mailgun_bounce, _mailgun_complaint
        if provider == "sendgrid":
            return _sendgrid("bounce", type="bounce", status="5.1.1"), _sendgrid("spamreport")
        return _postmark("Bounce", "HardBounce"), _postmark("SpamComplaint", "SpamComplaint")

    def counts(self) -> tuple[int, int]:
        """Stored inbound rows and suppressions."""
        with self.db.session() as session:
            inbound = session.scalar(select(func.count()).select_from(InboundMessage))
            suppressed = session.scalar(select(func.count()).select_from(Suppression))
        return inbound or 0, suppressed or 0

    def suppression(self, email: str) -> str | None:
        with self.db.session() as session:
            found = session.scalars(select(Suppression).where(Suppression.email == email)).first()
            return found.reason.value if found else None

    def status(self, email: str) -> SubscriptionStatus:
        with self.db.session() as session:
            subscription = session.scalars(
                select(Subscription)
                .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
                .where(Subscriber.email == email)
            ).one()
            return subscription.status


def configured(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_ses_topic_arns": TOPIC,
            "webhook_mailgun_signing_key": SecretStr(MAILGUN_KEY),
            "webhook_sendgrid_public_key": verification_key(),
            "webhook_postmark_credentials": SecretStr(CREDENTIALS),
        }
    )


def _site(settings: Settings, db: Database) -> Iterator[Site]:
    newsletter(db)
    subscribers(db, "daily", 3)
    signer = SnsSigner()
    app = create_app(settings, db)
    app.state.webhooks = WebhookState(sns=signer.http())
    with serve(app) as base:
        yield Site(base, signer, db)


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    yield from _site(configured(settings), db)


PROVIDERS = ["ses", "mailgun", "sendgrid", "postmark"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_bounce_and_complaint_do_their_work_once(site: Site, provider: str) -> None:
    bounce, complaint = site.senders(provider)
    answer = site.post(provider, bounce("reader0@example.ge", "ev-1"))
    assert (answer.status_code, answer.json()) == (200, {"new": 1, "replayed": 0})
    assert site.suppression("reader0@example.ge") == "hard_bounce"
    complained_answer = site.post(provider, complaint("reader1@example.ge", "ev-2"))
    assert complained_answer.json() == {"new": 1, "replayed": 0}
    assert site.suppression("reader1@example.ge") == "complaint"
    assert site.status("reader1@example.ge") == SubscriptionStatus.unsubscribed
    assert site.status("reader2@example.ge") == SubscriptionStatus.active
    assert site.counts() == (2, 2)
    again = site.post(provider, bounce("reader0@example.ge", "ev-1"))  # signed anew, same id
    assert (again.status_code, again.json()) == (200, {"new": 0, "replayed": 1})
    assert site.counts() == (2, 2)


def _forgeries(site: Site, provider: str) -> list[Signed]:
    bounce, _ = site.senders(provider)
    body, headers = bounce("reader0@example.ge", "ev-1")
    altered = body.replace(b"5.1.1", b"5.1.2")
    if provider == "ses":
        message = json.loads(body)
        elsewhere = {**message, "SigningCertURL": "https://evil.example/cert.pem"}
        other_topic = site.signer.sign({**message, "TopicArn": "arn:aws:sns:x:1:other"})
        forged = SnsSigner().sign(message)
        return [
            (altered, headers),
            *((json.dumps(m).encode(), {}) for m in (elsewhere, other_topic, forged)),
        ]
    if provider == "mailgun":
        envelope = json.loads(body)
        envelope["signature"]["timestamp"] = str(int(envelope["signature"]["timestamp"]) - 600)
        return [
            (mailgun_body(failed("reader0@example.ge", "ev-1"), key="wrong"), headers),
            (json.dumps(envelope).encode(), headers),
        ]
    if provider == "sendgrid":
        stale = {**sendgrid_headers(body), SIGNATURE: headers[SIGNATURE][:-8] + "AAAAAAA="}
        return [(altered, headers), (body, stale), (body, {})]
    return [(body, basic_auth("postmark:guess")), (body, {})]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_badly_signed_request_is_refused_with_nothing_stored(site: Site, provider: str) -> None:
    for signed in _forgeries(site, provider):
        answer = site.post(provider, signed)
        assert answer.status_code in (401, 403), answer.text
        assert "error" in answer.json()
    assert site.counts() == (0, 0)
    assert set(site.signer.fetched) <= {CERT_URL}  # never the certificate off the SNS hosts
    assert site.status("reader0@example.ge") == SubscriptionStatus.active


def test_a_subscription_confirmation_is_confirmed(site: Site) -> None:
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "c-1",
        "Token": "token-1",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe ...",
        "SubscribeURL": "https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp": "2025-06-27T09:00:00.000Z",
    }
    answer = site.post("ses", (json.dumps(site.signer.sign(confirmation)).encode(), {}))
    assert (answer.status_code, answer.json()) == (200, {"new": 0, "replayed": 0})
    assert site.signer.confirmed == [confirmation["SubscribeURL"]]
    off_host = {**confirmation, "SubscribeURL": "https://127.0.0.1/confirm"}
    refused = site.post("ses", (json.dumps(site.signer.sign(off_host)).encode(), {}))
    assert refused.status_code == 403
    assert site.signer.confirmed == [confirmation["SubscribeURL"]]


def test_malformed_large_and_unknown(site: Site) -> None:
    assert site.post("postmark", (b"not json", basic_auth())).status_code == 400
    assert site.post("nosuch", (b"{}", {})).status_code == 404
    big = b"[" + b" " * (1024 * 1024) + b"]"
    assert site.post("sendgrid", (big, sendgrid_headers(big))).status_code == 413
    assert site.counts() == (0, 0)


def test_an_unconfigured_provider_is_not_there(db: Database, settings: Settings) -> None:
    for site in _site(settings, db):
        for provider in PROVIDERS:
            bounce, _ = site.senders(provider)
            answer = site.post(provider, bounce("reader0@example.ge", "ev-1"))
            assert answer.status_code == 404, provider
            assert MAILGUN_KEY not in answer.text and CREDENTIALS not in answer.text
        assert site.counts() == (0, 0)
