"""SES through SNS: the signature (versions 1 and 2) over SNS's canonical string, checked
with a certificate made here; the certificate address pinned before any fetch; the topic
allowed; a subscription confirmed; bounces and complaints mapped per recipient."""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks import Refusal, SnsHttp, WebhookRefused, WebhookRequest
from tidings.inbound.webhooks.ses import read_ses
from tidings.inbound.webhooks.sns import canonical_string
from tidings.mail.status import BounceKind

TOPIC = "arn:aws:sns:eu-central-1:123456789012:tidings-bounces"
CERT_URL = "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-0123.pem"
SUBSCRIBE_URL = (
    "https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=x"
)
NOW = datetime.now(UTC)


def make_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A self-signed certificate for ``key``, valid a day either side of now."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsSigner:
    """Signs SNS messages as SNS does, and serves its certificate to the webhook."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    fetched: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    def sign(self, message: dict[str, object], version: str = "2") -> dict[str, object]:
        message = {**message, "SignatureVersion": version, "SigningCertURL": CERT_URL}
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 (SNS v1)
        signature = self.key.sign(canonical_string(message), padding.PKCS1v15(), algorithm)
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def http(self) -> SnsHttp:
        certificate = make_certificate(self.key)

        def fetch(url: str) -> bytes:
            self.fetched.append(url)
            return certificate

        return SnsHttp(fetch_certificate=fetch, confirm_subscription=self.confirmed.append)


def notification(ses_event: dict[str, object], message_id: str = "sns-1") -> dict[str, object]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(ses_event),
        "Timestamp": "2025-06-27T09:00:00.000Z",
    }


def bounce_event(*recipients: dict[str, str], bounce_type: str = "Permanent") -> dict[str, object]:
    return {
        "notificationType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bouncedRecipients": list(recipients)},
        "mail": {"commonHeaders": {"messageId": "<d-42@messenger.example.ge>"}},
    }


def complaint_event(email: str) -> dict[str, object]:
    return {
        "eventType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": email}]},
        "mail": {"headers": [{"name": "Message-ID", "value": "<d-43@messenger.example.ge>"}]},
    }


def ses_settings() -> Settings:
    return Settings(webhook_ses_topic_arns=f"arn:aws:sns:us-east-1:1:other, {TOPIC}")


def body_of(message: dict[str, object]) -> bytes:
    return json.dumps(message).encode()


def read(
    signer: SnsSigner, message: dict[str, object], sns: SnsHttp | None = None
) -> list[ProviderEvent]:
    request = WebhookRequest({"content-type": "text/plain"}, body_of(message), NOW)
    return read_ses(request, ses_settings(), sns or signer.http())


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner()


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_bounce_is_one_event_per_recipient(signer: SnsSigner, version: str) -> None:
    gone = {
        "emailAddress": "Reader0@Example.GE",
        "status": "5.1.1",
        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
    }
    full = {
        "emailAddress": "reader1@example.ge",
        "status": "4.2.2",
        "diagnosticCode": "452 4.2.2 mailbox full",
    }
    message = signer.sign(notification(bounce_event(gone, full)), version)
    events = read(signer, message)
    assert [(e.event_id, e.email, e.kind, e.bounce_kind, e.status) for e in events] == [
        ("sns-1:0", "reader0@example.ge", "bounce", BounceKind.hard, "5.1.1"),
        ("sns-1:1", "reader1@example.ge", "bounce", BounceKind.soft, "4.2.2"),
    ]
    assert {e.message_id for e in events} == {"<d-42@messenger.example.ge>"}
    assert events[0].diagnostic == "smtp; 550 5.1.1 user unknown"
    assert events[0].provider == "ses" and b"sns-1" in events[0].raw


def test_the_providers_verdict_decides_an_unclear_code(signer: SnsSigner) -> None:
    unclear = {
        "emailAddress": "reader0@example.ge",
        "status": "5.0.0",
        "diagnosticCode": "550 5.0.0 no",
    }
    permanent = read(signer, signer.sign(notification(bounce_event(unclear))))
    transient = read(
        signer, signer.sign(notification(bounce_event(unclear, bounce_type="Transient")))
    )
    blocked = {"emailAddress": "reader0@example.ge", "diagnosticCode": "554 listed at Spamhaus"}
    policy = read(signer, signer.sign(notification(bounce_event(blocked))))
    assert permanent[0].event_id == "sns-1"  # one recipient: the SNS MessageId itself
    assert [permanent[0].bounce_kind, transient[0].bounce_kind, policy[0].bounce_kind] == [
        BounceKind.hard,
        BounceKind.soft,
        BounceKind.policy,
    ]


def test_a_signed_complaint(signer: SnsSigner) -> None:
    events = read(signer, signer.sign(notification(complaint_event("reader2@example.ge"), "sns-2")))
    assert [(e.event_id, e.kind, e.email, e.message_id, e.bounce_kind) for e in events] == [
        ("sns-2", "complaint", "reader2@example.ge", "<d-43@messenger.example.ge>", None)
    ]


def test_a_delivery_notification_is_no_event(signer: SnsSigner) -> None:
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": ["a@example.ge"]}}
    assert read(signer, signer.sign(notification(delivery))) == []


def _refusal(call: Callable[[], object]) -> Refusal:
    with pytest.raises(WebhookRefused) as refused:
        call()
    return refused.value.refusal


def test_an_altered_message_is_refused(signer: SnsSigner) -> None:
    gone = {"emailAddress": "reader0@example.ge", "status": "5.1.1"}
    message = signer.sign(notification(bounce_event(gone)))
    other = {"emailAddress": "editor@example.ge", "status": "5.1.1"}
    altered = {**message, "Message": json.dumps(bounce_event(other))}
    assert _refusal(lambda: read(signer, altered)) == Refusal.forbidden
    subject = {**message, "Subject": "added after signing"}
    assert _refusal(lambda: read(signer, subject)) == Refusal.forbidden


def test_another_key_is_refused(signer: SnsSigner) -> None:
    forger = SnsSigner()
    message = forger.sign(notification(bounce_event({"emailAddress": "reader0@example.ge"})))
    assert _refusal(lambda: read(signer, message)) == Refusal.forbidden


def test_a_topic_not_allowed_is_refused_before_any_fetch() -> None:
    signer = SnsSigner()
    message = signer.sign({**notification(complaint_event("a@example.ge")), "TopicArn": "arn:x"})
    assert _refusal(lambda: read(signer, message)) == Refusal.forbidden
    assert signer.fetched == []


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/cert.pem",
        "http://sns.eu-central-1.amazonaws.com/cert.pem",
        "https://sns.eu-central-1.amazonaws.com.evil.example/cert.pem",
        "https://sns.eu-central-1.amazonaws.com:8443/cert.pem",
        "https://user@sns.eu-central-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
    ],
)
def test_a_certificate_off_the_sns_hosts_is_never_fetched(url: str) -> None:
    signer = SnsSigner()
    message = {**signer.sign(notification(complaint_event("a@example.ge"))), "SigningCertURL": url}
    assert _refusal(lambda: read(signer, message)) == Refusal.forbidden
    assert signer.fetched == []


def test_a_china_region_certificate_is_fetched_and_cached() -> None:
    signer = SnsSigner()
    sns = signer.http()
    china = CERT_URL.replace("amazonaws.com", "amazonaws.com.cn")
    for message_id in ("m-1", "m-2"):
        message = signer.sign(notification(complaint_event("a@example.ge"), message_id))
        message = {**message, "SigningCertURL": china}
        assert len(read(signer, message, sns)) == 1
    assert signer.fetched == [china]  # once: the second came from the cache


def test_an_unknown_signature_version_and_an_unsigned_message() -> None:
    signer = SnsSigner()
    message = signer.sign(notification(complaint_event("a@example.ge")))
    assert _refusal(lambda: read(signer, {**message, "SignatureVersion": "3"})) == Refusal.forbidden
    unsigned = notification(complaint_event("a@example.ge"))
    assert _refusal(lambda: read(signer, unsigned)) == Refusal.unauthenticated
    garbled = {**message, "Signature": "not base64!"}
    assert _refusal(lambda: read(signer, garbled)) == Refusal.forbidden


def test_a_subscription_is_confirmed_on_its_sns_address() -> None:
    signer = SnsSigner()
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "c-1",
        "Token": "token-1",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic ...",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": "2025-06-27T09:00:00.000Z",
    }
    assert read(signer, signer.sign(confirmation, "1")) == []
    assert signer.confirmed == [SUBSCRIBE_URL]
    elsewhere = signer.sign({**confirmation, "SubscribeURL": "https://evil.example/confirm"})
    assert _refusal(lambda: read(signer, elsewhere)) == Refusal.forbidden
    forged = {**signer.sign(confirmation), "Token": "token-2"}
    assert _refusal(lambda: read(signer, forged)) == Refusal.forbidden
    assert signer.confirmed == [SUBSCRIBE_URL]  # neither was confirmed


def test_unconfigured_and_malformed() -> None:
    signer = SnsSigner()
    request = WebhookRequest({}, b"{}", NOW)
    assert _refusal(lambda: read_ses(request, Settings(), signer.http())) == Refusal.unconfigured
    not_json = WebhookRequest({}, b"<xml/>", NOW)
    assert _refusal(lambda: read_ses(not_json, ses_settings(), signer.http())) == Refusal.malformed


def test_a_failed_certificate_fetch_asks_sns_to_try_again() -> None:
    signer = SnsSigner()

    def unreachable(url: str) -> bytes:
        raise OSError("network is unreachable")

    message = signer.sign(notification(complaint_event("a@example.ge")))
    sns = SnsHttp(fetch_certificate=unreachable, confirm_subscription=signer.confirmed.append)
    assert _refusal(lambda: read(signer, message, sns)) == Refusal.unavailable


def test_the_default_fetches_refuse_other_hosts_before_connecting() -> None:
    """The default SnsHttp pins again in its own fetch (nothing here reaches a network)."""
    sns = SnsHttp()
    for url in ("https://127.0.0.1/cert.pem", "https://sns.x.amazonaws.com.evil/cert.pem"):
        assert _refusal(lambda u=url: sns.certificate(u)) == Refusal.forbidden
        assert _refusal(lambda u=url: sns.fetch_certificate(u)) == Refusal.forbidden
        assert _refusal(lambda u=url: sns.confirm(u)) == Refusal.forbidden
        assert _refusal(lambda u=url: sns.confirm_subscription(u)) == Refusal.forbidden
