"""What the inbound service is given and what it answers, for every way in (a raw message
from a pipe, the SMTP/LMTP listener or IMAP; a provider's webhook event)."""

from dataclasses import dataclass

from tidings.db.models import InboundMeaning
from tidings.mail.status import BounceKind


@dataclass(frozen=True)
class ProviderEvent:
    """One bounce, complaint or unsubscribe event of a sending provider's webhook, already
    verified (its signature) and mapped from the provider's shape."""

    provider: str
    #: The provider's own id of the event: stored once (a replay changes nothing).
    event_id: str
    #: bounce, complaint or unsubscribe.
    kind: str
    #: The reader's address the event is about.
    email: str
    #: Our Message-ID of the delivery, when the provider passes it on.
    message_id: str | None
    #: The provider's verdict on a bounce (hard, soft; policy for reputation refusals).
    bounce_kind: BounceKind | None
    status: str | None
    diagnostic: str | None
    #: The event as received (kept, capped).
    raw: bytes


@dataclass(frozen=True)
class Handled:
    """What one inbound message or event was taken to mean and what it changed."""

    #: The stored row (None when a replayed webhook event was already stored).
    inbound_id: int | None
    meaning: InboundMeaning
    changes: str
    #: False for a replayed provider event: nothing was done again.
    new: bool = True
