"""Whom an inbound message is about: the delivery, subscription or reader an address or a
returned message names. Query helpers: they run on the caller's session and never commit.

Only a signed address (:mod:`tidings.mail.returnpath`) names anyone by itself: its mac is the
protection, so a forged or altered one names nobody. A complaint report that reached an
unsigned address may name our delivery by what it quotes: the returned message's signed return
path or List-Unsubscribe address first, then its Message-ID, which is accepted only when the
recipient the report gives is that delivery's reader (a report that names no recipient is not
trusted on its Message-ID alone).

A Message-ID is looked up by the reader it should belong to (:func:`of_message_id`): the
caller knows who that is, and deliveries have no index on message_id (the fan-out of a
million rows stays cheap without one), so an index finds the reader's one delivery of the
edition instead of a read of the whole edition.
"""

import re
from collections.abc import Iterable
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


def of_message_id(
    session: Session, message_id: str | None, readers: Iterable[int | None]
) -> Target | None:
    """The delivery whose Message-ID this is, if it is one of ``readers``' (subscriber ids):
    their delivery of the edition the Message-ID names, found by edition and reader (the
    (edition, subscriber) unique index), and only if it stored exactly this Message-ID (so a
    made-up, altered or another edition's one finds nothing). No readers, nothing: a
    Message-ID alone names nobody (an erased reader's deliveries name nobody either)."""
    found = _MESSAGE_ID.match((message_id or "").strip())
    wanted_readers = sorted({reader for reader in readers if reader is not None})
    if found is None or not wanted_readers:
        return None
    wanted = "<" + (message_id or "").strip().strip("<>") + ">"
    delivery_id = session.scalar(
        select(Delivery.id)
        .where(
            Delivery.edition_id == int(found.group(1)),
            Delivery.subscriber_id.in_(wanted_readers),
            Delivery.message_id == wanted,
        )
        .limit(1)
    )
    if delivery_id is None:
        return None
    return of_delivery(session, delivery_id, "the returned Message-ID")


def subscribers_with(session: Session, addresses: Iterable[str | None]) -> list[int]:
    """The ids of the readers with these addresses (compared lower-cased, through the unique
    email index); empty for none."""
    wanted = sorted(
        {address.strip().lower() for address in addresses if address and "@" in address}
    )
    if not wanted:
        return []
    return list(session.scalars(select(Subscriber.id).where(Subscriber.email.in_(wanted))))


def of_email(session: Session, email: str) -> Target | None:
    """The reader with this address (a provider's event names its recipient)."""
    row = session.execute(
        select(Subscriber.id, Subscriber.email).where(Subscriber.email == email.strip().lower())
    ).first()
    return Target("the event's address", row.email, row.id) if row is not None else None


def of_returned(session: Session, secret: str, domain: str | None, parsed: Parsed) -> Target | None:
    """The delivery a report quotes: its signed return path (the report's Original-Mail-From
    or the returned message's Return-Path), its signed List-Unsubscribe address, then its
    Message-ID, looked up only as the delivery of a reader the report names (a signed
    subscription's reader, else the reader of its Original-Rcpt-To or the returned To)."""
    returned = parsed.returned
    message_id = returned.message_id if returned else None
    for found_by, address in _quoted_paths(parsed):
        tagged = read_signed(secret, domain, address or None)
        target = (
            of_tag(session, tagged, found_by) if tagged and tagged.role != Role.notice else None
        )
        if target is None:
            continue
        if target.delivery_id is None:  # a subscription: the delivery, too, if it is its reader's
            delivery = of_message_id(session, message_id, [target.subscriber_id])
            if delivery is not None:
                return replace(delivery, found_by=found_by)
        return target
    if returned is None:
        return None
    # Not trusted on its Message-ID alone: Message-IDs follow a pattern a reader of the same
    # edition can see, so the report must also name this very reader.
    feedback = parsed.feedback
    said = [feedback.original_rcpt_to if feedback else None, returned.to]
    return of_message_id(session, message_id, subscribers_with(session, said))


def _quoted_paths(parsed: Parsed) -> list[tuple[str, str | None]]:
    """The addresses of ours a report may quote, in the order they are trusted."""
    feedback, returned = parsed.feedback, parsed.returned
    unsubscribe = _MAILTO.search((returned.list_unsubscribe if returned else None) or "")
    return [
        ("the reported Original-Mail-From", feedback.original_mail_from if feedback else None),
        ("the returned Return-Path", returned.return_path if returned else None),
        ("the returned List-Unsubscribe", unsubscribe.group(1) if unsubscribe else None),
    ]
