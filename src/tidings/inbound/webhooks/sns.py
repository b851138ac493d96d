"""Amazon SNS's HTTPS messages: the signature (version 1, SHA1withRSA; version 2,
SHA256withRSA) over the canonical string SNS defines, with the signing certificate fetched
only from an SNS host, and the subscription confirmation.

What must be fetched (the certificate, the confirmation) goes through :class:`SnsHttp`, so
the app can be given another (the tests cannot reach AWS); every address is checked against
the SNS host pattern here, before any fetch, whatever fetcher is used."""

import base64
import binascii
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tidings.inbound.webhooks.common import (
    Refusal,
    WebhookRefused,
    forbidden,
    malformed,
    text_field,
)

#: sns.<region>.amazonaws.com, and .com.cn for the China regions: the only hosts whose
#: certificate or confirmation address is believed.
SNS_HOST = re.compile(r"sns\.[a-z0-9-]{3,40}\.amazonaws\.com(\.cn)?")
#: A signing certificate is about 2 KB; a larger answer is not one.
CERTIFICATE_CAP = 64 * 1024
FETCH_TIMEOUT = httpx.Timeout(5.0)
#: Certificates kept per URL (SNS rotates them rarely; a few regions at most).
CACHE_SIZE = 16

_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS["UnsubscribeConfirmation"] = _SIGNED_FIELDS["SubscriptionConfirmation"]
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


def sns_url(url: str | None, what: str) -> str:
    """``url`` when it is https on an SNS host (no credentials, no other port); a refusal
    otherwise, before anything is fetched."""
    parts = urlsplit(url or "")
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname or ""
    if (
        parts.scheme != "https"
        or not SNS_HOST.fullmatch(host)
        or port not in (None, 443)
        or parts.username is not None
        or parts.password is not None
    ):
        raise forbidden(f"the {what} is not on an SNS host")
    return url or ""


def canonical_string(message: dict[str, object]) -> bytes:
    """What SNS signs: each signed field's name and value on lines of their own, in its
    fixed order, skipping an absent Subject."""
    names = _SIGNED_FIELDS.get(text_field(message, "Type") or "")
    if names is None:
        raise malformed("not an SNS message type")
    lines = []
    for name in names:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise malformed(f"the SNS message has no {name}")
        lines += [name, value]
    return ("\n".join(lines) + "\n").encode()


def verify_signature(message: dict[str, object], certificate_pem: bytes, now: datetime) -> None:
    """Raise a refusal unless the message is signed by the certificate's key, and the
    certificate is valid now."""
    algorithm = _HASHES.get(text_field(message, "SignatureVersion") or "")
    if algorithm is None:
        raise forbidden("an unknown SNS signature version")
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (ValueError, binascii.Error):
        raise forbidden("the signing certificate or the signature is unreadable") from None
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise forbidden("the signing certificate's key is not RSA")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise forbidden("the signing certificate is not valid now")
    try:
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise forbidden("the SNS signature does not match") from None


@dataclass
class SnsHttp:
    """The two fetches SNS needs: the signing certificate (cached per URL) and the GET of a
    SubscribeURL. Both are given addresses already checked by :func:`sns_url`; the default
    ones check again, fetch with httpx (TLS verified, no redirects, bounded time and size)."""

    fetch_certificate: Callable[[str], bytes] = field(default=lambda url: _get(url))
    confirm_subscription: Callable[[str], None] = field(default=lambda url: _confirm(url))
    _cache: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def certificate(self, url: str) -> bytes:
        """The certificate at ``url`` (pinned), from the cache when fetched before; a
        failed fetch is a 503 refusal, so SNS tries again later."""
        url = sns_url(url, "SigningCertURL")
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            pem = self.fetch_certificate(url)
        except (httpx.HTTPError, OSError) as exc:
            raise WebhookRefused(Refusal.unavailable, f"certificate fetch failed: {exc}") from None
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[url] = pem
        return pem

    def confirm(self, url: str | None) -> None:
        """GET the SubscribeURL (pinned); a failure is a 503 refusal, so SNS tries again."""
        url = sns_url(url, "SubscribeURL")
        try:
            self.confirm_subscription(url)
        except (httpx.HTTPError, OSError) as exc:
            raise WebhookRefused(Refusal.unavailable, f"confirmation failed: {exc}") from None


def _get(url: str) -> bytes:
    """An SNS address's body: at most :data:`CERTIFICATE_CAP` bytes, a 2xx answer."""
    sns_url(url, "address")
    with (
        httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
        client.stream("GET", url) as answer,
    ):
        answer.raise_for_status()
        body = b""
        for chunk in answer.iter_bytes():
            body += chunk
            if len(body) > CERTIFICATE_CAP:
                raise httpx.DecodingError(f"{url}: more than {CERTIFICATE_CAP} bytes")
        return body


def _confirm(url: str) -> None:
    _get(url)
