"""What every provider's webhook shares: the request as received, the refusal, and the
mapping helpers (addresses, Message-IDs, the bounce verdict, timestamps)."""

import enum
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.errors import InvalidAddress, TidingsError
from tidings.inbound.events import ProviderEvent
from tidings.mail.addresses import normalise_email
from tidings.mail.status import BounceKind, classify, enhanced_status

#: How far a signed timestamp may be from our clock (Mailgun's and SendGrid's advice): a
#: captured request cannot be replayed later, and a clock a little off still works.
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
#: Each event keeps at most this much of what the provider sent (the service caps again).
RAW_CAP = 64 * 1024
#: A diagnostic line is kept to this many characters.
DIAGNOSTIC_CAP = 1000


class Refusal(enum.StrEnum):
    """Why a webhook request was refused; the route turns each into its HTTP status."""

    #: The provider's setting is empty: the endpoint does not exist (404).
    unconfigured = "unconfigured"
    #: No signature or credentials at all (401).
    unauthenticated = "unauthenticated"
    #: A signature, credentials, timestamp, topic or certificate address that does not pass (403).
    forbidden = "forbidden"
    #: Not the provider's shape (400).
    malformed = "malformed"
    #: Something we must fetch to verify or confirm could not be had: try again later (503).
    unavailable = "unavailable"


class WebhookRefused(TidingsError):
    """A provider webhook request was not accepted; nothing of it was acted on."""

    def __init__(self, refusal: Refusal, reason: str) -> None:
        super().__init__(reason)
        self.refusal = refusal
        self.reason = reason


@dataclass(frozen=True)
class WebhookRequest:
    """One POST as received: its headers (names in lower case), its raw body, and our clock."""

    headers: Mapping[str, str]
    body: bytes
    now: datetime

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def malformed(reason: str) -> WebhookRefused:
    return WebhookRefused(Refusal.malformed, reason)


def forbidden(reason: str) -> WebhookRefused:
    return WebhookRefused(Refusal.forbidden, reason)


def load_json(body: bytes) -> Any:
    """The body as JSON, or a 400 refusal."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise malformed("the body is not JSON") from None


def field(data: object, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def text_field(data: object, *path: str) -> str | None:
    """A string (or number) field, as text; None when missing, empty or another type."""
    value = field(data, *path)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip() or None


def email_of(value: object) -> str | None:
    """The reader's address in its stored form; None when it is not an address at all (the
    event is then skipped: it can name nobody)."""
    if not isinstance(value, str):
        return None
    try:
        return normalise_email(value)
    except InvalidAddress:
        return None


def message_id_of(value: object) -> str | None:
    """A Message-ID as we store it (``<local@domain>``): providers pass it with or without
    its angle brackets."""
    if not isinstance(value, str) or not value.strip():
        return None
    bare = value.strip().removeprefix("<").removesuffix(">").strip()
    return f"<{bare}>" if bare and len(bare) <= 250 else None


def verdict(
    status: str | None, diagnostic: str | None, provider: BounceKind, code: int | None = None
) -> BounceKind:
    """The bounce kind: the receiver's own words when they decide it (a gone recipient, a
    policy or blocklist refusal, a 4.x.x temporary code), else the provider's verdict.

    The one classifier (mail.status) calls anything unclear soft; a provider that saw the
    whole SMTP exchange and says "permanent" for a bare 5.0.0 knows more than that."""
    text = diagnostic or ""
    enhanced = enhanced_status(status or "") or enhanced_status(text)
    basic = code or _basic_code(status) or _basic_code(text)
    found = classify(basic, enhanced, text)
    if found is not BounceKind.soft:
        return found
    if enhanced is not None and enhanced.startswith("4."):
        return BounceKind.soft
    return provider


def _basic_code(text: str | None) -> int | None:
    """The SMTP reply code a diagnostic starts with (``smtp; 550 ...``, ``550-5.1.1``)."""
    if not text:
        return None
    head = text.strip().removeprefix("smtp;").strip()[:3]
    return int(head) if head.isdigit() and head[0] in "245" else None


def enhanced_or_none(status: str | None, diagnostic: str | None) -> str | None:
    """The enhanced status code to keep with the event (``5.1.1``), when there is one."""
    return enhanced_status(status or "") or enhanced_status(diagnostic or "")


def diagnostic_of(*parts: str | None) -> str | None:
    """The receiver's words, the non-empty parts joined, on one line, capped."""
    joined = " ".join(" ".join(part.split()) for part in parts if part and part.strip())
    return joined[:DIAGNOSTIC_CAP] or None


def fresh(timestamp: str | None, now: datetime) -> bool:
    """A signed Unix timestamp within :data:`TIMESTAMP_TOLERANCE` of ``now``."""
    try:
        signed = datetime.fromtimestamp(float(timestamp or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return abs(signed - now) <= TIMESTAMP_TOLERANCE


def raw_of(item: object) -> bytes:
    """One event's part of the body, as JSON, capped at :data:`RAW_CAP`."""
    return json.dumps(item, ensure_ascii=False, sort_keys=True).encode()[:RAW_CAP]


@dataclass(frozen=True)
class Bounce:
    """A bounce's verdict and the receiver's words."""

    kind: BounceKind
    status: str | None = None
    diagnostic: str | None = None


def bounce_of(
    status: str | None, diagnostic: str | None, provider: BounceKind, code: int | None = None
) -> Bounce:
    """The :class:`Bounce` of a refusal: its verdict, enhanced code and diagnostic line."""
    return Bounce(
        verdict(status, diagnostic, provider, code),
        enhanced_or_none(status, diagnostic),
        diagnostic_of(diagnostic),
    )


def make_event(
    provider: str,
    event_id: str,
    kind: str,
    email: str,
    raw: bytes,
    message_id: str | None = None,
    bounce: Bounce | None = None,
) -> ProviderEvent:
    """A :class:`ProviderEvent`; ``bounce`` only for kind ``bounce``."""
    return ProviderEvent(
        provider=provider,
        event_id=event_id[:255],
        kind=kind,
        email=email,
        message_id=message_id,
        bounce_kind=bounce.kind if bounce else None,
        status=bounce.status if bounce else None,
        diagnostic=bounce.diagnostic if bounce else None,
        raw=raw,
    )


@dataclass
class RecentTokens:
    """Signing tokens seen within the timestamp window, each with a digest of the body it
    came with: Mailgun signs the timestamp and token, not the event, so a captured request
    must not pass again with another event while its timestamp is fresh. The same body again
    (a retry after a lost answer) passes: the event's id makes it change nothing. In memory,
    per process: it covers the five minutes that matter."""

    limit: int = 100_000
    _seen: dict[str, tuple[bytes, datetime]] = dataclass_field(
        default_factory=dict, init=False, repr=False
    )
    _lock: threading.Lock = dataclass_field(default_factory=threading.Lock, init=False, repr=False)

    def matches(self, token: str, body: bytes, now: datetime) -> bool:
        """False when ``token`` came with another body within the window; else remember it."""
        digest = hashlib.sha256(body).digest()
        horizon = now - 2 * TIMESTAMP_TOLERANCE
        with self._lock:
            if len(self._seen) >= self.limit:
                self._seen = {t: seen for t, seen in self._seen.items() if seen[1] > horizon}
            if len(self._seen) >= self.limit:
                self._seen.pop(next(iter(self._seen)))
            seen = self._seen.get(token)
            if seen is not None and seen[1] > horizon and seen[0] != digest:
                return False
            self._seen[token] = (digest, now)
            return True
