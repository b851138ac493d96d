"""One subscription at a time: add a subscriber to a newsletter, find a subscription by
address, show the one behind a link, unsubscribe it.

Imports are in :mod:`tidings.audience.imports.importer`, the CSV export in
:mod:`tidings.audience.export`.
"""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audience.membership import is_suppressed, leave
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.engine import Database
from tidings.db.models import (
    HistoryKind,
    Newsletter,
    Subscriber,
    SubscriberEvent,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.errors import InvalidInput, NotFound
from tidings.feedback.history import consent_survives, record
from tidings.mail.addresses import clean_name, normalise_email


@dataclass(frozen=True)
class AddResult:
    """The outcome of adding one subscriber to one newsletter."""

    email: str
    status: SubscriptionStatus
    created_subscriber: bool
    changed: bool
    note: str
    subscriber_id: int
    subscription_id: int = 0


def add_subscriber(
    db: Database, slug: str, email: str, name: str | None, confirmed: bool, source: str
) -> AddResult:
    """Add ``email`` to newsletter ``slug`` (pending, or active with ``confirmed``), as
    ``source`` (api, cli, console): an ``added`` event, and ``confirmed`` when it is made
    active, go into the subscriber's history."""
    address = normalise_email(email)
    clean = clean_name(name)
    now = utcnow()
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        if is_suppressed(session, address):
            raise InvalidInput(f"{address} is on the suppression list and cannot be subscribed")
        subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
        created = subscriber is None
        if subscriber is None:
            subscriber = Subscriber(email=address, name=clean, attributes={})
            session.add(subscriber)
            session.flush()
        elif clean and clean != subscriber.name:
            subscriber.name = clean
        subscription = session.scalar(
            select(Subscription).where(
                Subscription.subscriber_id == subscriber.id,
                Subscription.newsletter_id == newsletter.id,
            )
        )
        wanted = SubscriptionStatus.active if confirmed else SubscriptionStatus.pending
        if subscription is None:
            subscription = Subscription(
                subscriber_id=subscriber.id,
                newsletter_id=newsletter.id,
                status=wanted,
                consent_at=now,
                consent_method="admin",
                consent_source=source,
                confirmed_at=now if confirmed else None,
            )
            session.add(subscription)
            session.flush()
            record(
                session,
                subscriber.id,
                HistoryKind.added,
                f"added as {wanted.value}",
                now,
                newsletter.id,
                source=source,
            )
            note = f"subscribed ({wanted.value})"
        elif subscription.status == SubscriptionStatus.unsubscribed:
            note = "unsubscribed earlier; not resubscribed (they must sign up again)"
        elif subscription.status == SubscriptionStatus.pending and confirmed:
            subscription.status = SubscriptionStatus.active
            subscription.confirmed_at = now
            record(
                session,
                subscriber.id,
                HistoryKind.confirmed,
                "confirmed by an admin",
                now,
                newsletter.id,
                source=source,
            )
            note = "confirmed (pending -> active)"
        else:
            note = f"already {subscription.status.value}"
        changed = bool(session.new or session.dirty)
        session.commit()
        return AddResult(
            address, subscription.status, created, changed, note, subscriber.id, subscription.id
        )


def subscription_for(
    session: Session, newsletter_id: int, email: str
) -> tuple[int, str, str | None]:
    """(subscription id, address, name) of ``email`` in the newsletter, or :class:`NotFound`."""
    address = normalise_email(email)
    row = session.execute(
        select(Subscription.id, Subscriber.email, Subscriber.name)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.newsletter_id == newsletter_id, Subscriber.email == address)
    ).first()
    if row is None:
        raise NotFound(f"{address} is not subscribed to this newsletter")
    return row[0], row[1], row[2]


@dataclass(frozen=True)
class SubscriptionView:
    """What the public pages show about a subscription reached through a signed link."""

    subscription_id: int
    email: str
    newsletter_name: str
    newsletter_slug: str
    status: SubscriptionStatus
    subscriber_id: int


def subscription_view(db: Database, subscription_id: int) -> SubscriptionView | None:
    """The subscription behind a link, or None if it no longer exists."""
    with db.session() as session:
        row = session.execute(
            select(
                Subscription.id,
                Subscriber.email,
                Newsletter.name,
                Newsletter.slug,
                Subscription.status,
                Subscription.subscriber_id,
            )
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
            .where(Subscription.id == subscription_id)
        ).first()
    return SubscriptionView(*row) if row else None


def unsubscribe(
    db: Database, subscription_id: int, source: str = "web", detail: str | None = None
) -> SubscriptionView | None:
    """Unsubscribe (idempotent); the next editions skip this person. None if unknown."""
    with db.session() as session:
        leave(session, utcnow(), Subscription.id == subscription_id, source=source, detail=detail)
        session.commit()
    return subscription_view(db, subscription_id)


def _left_by_admin(session: Session, subscription: Subscription) -> bool:
    """Whether the subscription's latest ``unsubscribed`` event came from an admin."""
    source = session.scalar(
        select(SubscriberEvent.source)
        .where(
            SubscriberEvent.subscriber_id == subscription.subscriber_id,
            SubscriberEvent.newsletter_id == subscription.newsletter_id,
            SubscriberEvent.kind == HistoryKind.unsubscribed,
        )
        .order_by(SubscriberEvent.id.desc())
        .limit(1)
    )
    return consent_survives(source)


def resubscribe(
    db: Database, subscription_id: int, source: str, detail: str | None = None
) -> SubscriptionView | None:
    """An admin subscribes a reader again. Active only when they had confirmed and the
    unsubscribe was an admin's own (an undo); a reader who left by themself withdrew their
    consent, so they are pending and must confirm again. The original consent record stays
    as it was; a ``resubscribed`` event says who did it. :class:`InvalidInput` for a
    suppressed address; None for an unknown subscription."""
    now = utcnow()
    with db.session() as session:
        row = session.execute(
            select(Subscription, Subscriber.email)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscription.id == subscription_id)
        ).first()
        if row is None:
            return None
        subscription, email = row
        if is_suppressed(session, email):
            raise InvalidInput(f"{email} is on the suppression list: remove the suppression first")
        if subscription.status == SubscriptionStatus.unsubscribed:
            subscription.status = (
                SubscriptionStatus.active
                if subscription.confirmed_at is not None and _left_by_admin(session, subscription)
                else SubscriptionStatus.pending
            )
            subscription.unsubscribed_at = None
            subscription.updated_at = now
            record(
                session,
                subscription.subscriber_id,
                HistoryKind.resubscribed,
                detail,
                now,
                subscription.newsletter_id,
                source=source,
            )
        session.commit()
    return subscription_view(db, subscription_id)
