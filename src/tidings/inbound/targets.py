"""Whom an inbound message is about: the delivery, subscription or reader an address or a
returned message names. Query helpers: they run on the caller's session and never commit.

Only a signed address (:mod:`tidings.mail.returnpath`) names anyone by itself: its mac is the
protection, so a forged or altered one names nobody. A complaint report that reached an
unsigned address may name our delivery by what it quotes: the returned message's signed return
path or List-Unsubscribe address first, then its Message-ID, which is accepted only when the
recipient the report gives is that delivery's reader (a report that names no recipient is not
trusted on its Message-ID alone).
"""

import re
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.db.models import Delivery, Edition, Subscriber, Subscription
from tidings.inbound.parse import Parsed
from tidings.mail.returnpath import Role, Tagged, read_address

#: ``<tidings.<edition>.<random>@domain>``, as the fan-out writes it (the random part is
#: drawn per delivery and names nobody); or ``<tidings.<edition>.<hex>.<subscriber>@domain>``,
#: as earlier versions wrote it: such deliveries keep their Message-ID (a retry reuses it),
#: and a complaint about one can come weeks after it was sent.
_MESSAGE_ID = re.compile(
    r"^<?tidings\.([0-9]{1,18})\.(?:[0-9a-f]{32}|[0-9a-f]{1,32}\.[0-9]{1,18})@[^<>\s]{1,255}>?$"
)
_MAILTO = re.compile(r"<mailto:([^?>\s]+)")
_TAGGED_SHAPE = re.compile(r"^[bun]-[0-9]+-", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """Whom a message is about. ``email`` is None when the reader was erased."""

    #: How it was found, in words ("the return path", "the returned Message-ID").
    found_by: str
    email: str | None
    subscriber_id: int | None
    delivery_id: int | None = None
    subscription_id: int | None = None


def looks_signed(address: str | None) -> bool:
    """Shaped like one of our signed addresses (whether or not its mac verifies)."""
    local = (address or "").strip().strip("<>").rpartition("@")[0]
    return bool(_TAGGED_SHAPE.match(local))


def read_signed(secret: str, domain: str | None, address: str | None) -> Tagged | None:
    """What a signed address names; None for anything forged, altered or not ours."""
    return read_address(secret, address, domain) if address else None


def of_tag(session: Session, tagged: Tagged, found_by: str) -> Target | None:
    """The delivery (``b-``) or subscription (``u-``, ``n-``) a verified address names."""
    if tagged.role == Role.bounce:
        return of_delivery(session, tagged.ident, found_by)
    row = session.execute(
        select(Subscription.subscriber_id, Subscriber.email)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.id == tagged.ident)
    ).first()
    if row is None:
        return None
    return Target(found_by, row.email, row.subscriber_id, subscription_id=tagged.ident)


def of_delivery(session: Session, delivery_id: int, found_by: str) -> Target | None:
    """A delivery, its reader (None when erased) and that reader's subscription to the
    edition's newsletter (None when there is none any more)."""
    row = session.execute(
        select(Delivery.subscriber_id, Subscriber.email, Subscription.id.label("subscription"))
        .join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(
            Subscription,
            (Subscription.subscriber_id == Delivery.subscriber_id)
            & (Subscription.newsletter_id == Edition.newsletter_id),
        )
        .where(Delivery.id == delivery_id)
    ).first()
    if row is None:
        return None
    return Target(found_by, row.email, row.subscriber_id, delivery_id, row.subscription)


def of_message_id(session: Session, message_id: str | None) -> Target | None:
    """The delivery whose Message-ID this is: among its edition's deliveries, the one that
    stored exactly this Message-ID (so a made-up one finds nothing)."""
    found = _MESSAGE_ID.match((message_id or "").strip())
    if found is None:
        return None
    wanted = "<" + (message_id or "").strip().strip("<>") + ">"
    delivery_id = session.scalar(
        select(Delivery.id)
        .where(Delivery.edition_id == int(found.group(1)), Delivery.message_id == wanted)
        .limit(1)
    )
    if delivery_id is None:
        return None
    return of_delivery(session, delivery_id, "the returned Message-ID")


def of_email(session: Session, email: str) -> Target | None:
    """The reader with this address (a provider's event names its recipient)."""
    row = session.execute(
        select(Subscriber.id, Subscriber.email).where(Subscriber.email == email.strip().lower())
    ).first()
    return Target("the event's address", row.email, row.id) if row is not None else None


def of_returned(session: Session, secret: str, domain: str | None, parsed: Parsed) -> Target | None:
    """The delivery a report quotes: its signed return path (the report's Original-Mail-From
    or the returned message's Return-Path), its signed List-Unsubscribe address, then its
    Message-ID."""
    returned = parsed.returned
    paths = [
        ("the reported Original-Mail-From", parsed.feedback and parsed.feedback.original_mail_from),
        ("the returned Return-Path", returned and returned.return_path),
    ]
    unsubscribe = _MAILTO.search((returned and returned.list_unsubscribe) or "")
    paths.append(("the returned List-Unsubscribe", unsubscribe.group(1) if unsubscribe else None))
    by_message_id = of_message_id(session, returned.message_id if returned else None)
    for found_by, address in paths:
        tagged = read_signed(secret, domain, address or None)
        target = (
            of_tag(session, tagged, found_by) if tagged and tagged.role != Role.notice else None
        )
        if target is None:
            continue
        same_reader = by_message_id and by_message_id.subscriber_id == target.subscriber_id
        if target.delivery_id is None and by_message_id is not None and same_reader:
            return replace(by_message_id, found_by=found_by)  # the delivery, too
        return target
    target = by_message_id
    if target is None or target.email is None:
        return None
    said = [
        (parsed.feedback and parsed.feedback.original_rcpt_to) or None,
        (returned and returned.to) or None,
    ]
    named = {address.lower() for address in said if address and "@" in address}
    if target.email.lower() not in named:
        # Not trusted on its Message-ID alone: Message-IDs follow a pattern a reader of the
        # same edition can see, so the report must also name this very reader.
        return None
    return target
