"""The preference centre behind the signed link in every digest.

A preference link names one subscription; it lets its owner manage that subscriber's name,
time zone, every newsletter they are on, and the sections of interest of the linked one.
Changes apply to the next edition: fan-out reads them when it queues deliveries. Rejoining
an unsubscribed newsletter here is the reader's own activation, so it is welcomed
(:mod:`tidings.audience.welcome`: at most once in its interval); the goodbye page's undo
is not.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audience.membership import is_suppressed, leave
from tidings.audience.signup import SignupQueue
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Cadence,
    HistoryKind,
    Newsletter,
    Source,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.errors import InvalidInput
from tidings.feedback.history import record
from tidings.mail.addresses import clean_name, clean_timezone

#: Sections offered are those used by the newsletter's articles in this window.
SECTION_WINDOW = timedelta(days=90)
#: How long after leaving the "undo" on the goodbye page still works.
UNDO_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class NewsletterChoice:
    subscription_id: int
    slug: str
    name: str
    status: SubscriptionStatus


@dataclass(frozen=True)
class Preferences:
    """What the preference centre shows."""

    subscription_id: int
    newsletter_name: str
    email: str
    name: str | None
    timezone: str | None
    newsletters: list[NewsletterChoice]
    sections_offered: list[str]
    sections_chosen: list[str]
    offers_weekly: bool
    cadence: Cadence


@dataclass(frozen=True)
class PreferenceChange:
    """The submitted form: ``keep`` holds the subscription ids left ticked."""

    name: str | None
    timezone: str | None
    keep: frozenset[int]
    sections: list[str]
    cadence: Cadence = Cadence.daily


def _linked(session: Session, subscription_id: int) -> tuple[Subscription, Subscriber] | None:
    row = session.execute(
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.id == subscription_id)
    ).first()
    return (row[0], row[1]) if row else None


def offered_sections(session: Session, newsletter_id: int, now: datetime) -> list[str]:
    """The sections of the newsletter's recent articles, alphabetically."""
    rows = session.scalars(
        select(Article.section)
        .join(Source, Source.id == Article.source_id)
        .where(
            Source.newsletter_id == newsletter_id,
            Article.section.is_not(None),
            Article.published_at >= now - SECTION_WINDOW,
        )
        .distinct()
    )
    return sorted(section for section in rows if section)


def preferences_of(db: Database, subscription_id: int) -> Preferences | None:
    """The preference centre of the linked subscription, or None if it is gone."""
    with db.session() as session:
        linked = _linked(session, subscription_id)
        if linked is None:
            return None
        subscription, subscriber = linked
        choices = [
            NewsletterChoice(*row)
            for row in session.execute(
                select(Subscription.id, Newsletter.slug, Newsletter.name, Subscription.status)
                .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
                .where(Subscription.subscriber_id == subscriber.id)
                .order_by(Newsletter.name)
            )
        ]
        newsletter = session.get_one(Newsletter, subscription.newsletter_id)
        return Preferences(
            subscription_id=subscription.id,
            newsletter_name=newsletter.name,
            email=subscriber.email,
            name=subscriber.name,
            timezone=subscriber.timezone,
            newsletters=choices,
            sections_offered=offered_sections(session, newsletter.id, utcnow()),
            sections_chosen=list(subscription.sections or []),
            offers_weekly=newsletter.offers_weekly,
            cadence=subscription.cadence,
        )


def save_preferences(db: Database, subscription_id: int, change: PreferenceChange) -> bool:
    """Apply the form; False if the subscription is gone. Bad values raise InvalidInput."""
    return apply_preferences(db, subscription_id, change) is not None


async def save_and_welcome(
    queue: SignupQueue, subscription_id: int, change: PreferenceChange
) -> bool:
    """Apply the form, then queue a welcome for each newsletter it rejoined (sent after the
    reader has been answered); False if the subscription is gone."""
    rejoined = await asyncio.to_thread(apply_preferences, queue.db, subscription_id, change)
    for each in rejoined or ():
        queue.welcome(each)
    return rejoined is not None


def apply_preferences(
    db: Database, subscription_id: int, change: PreferenceChange
) -> list[int] | None:
    """Apply the form: the subscriptions it rejoined, or None if the linked one is gone.
    Bad values raise InvalidInput."""
    now = utcnow()
    timezone = clean_timezone(change.timezone)
    rejoined: list[int] = []
    with db.session() as session:
        linked = _linked(session, subscription_id)
        if linked is None:
            return None
        subscription, subscriber = linked
        newsletter = session.get_one(Newsletter, subscription.newsletter_id)
        if change.cadence == Cadence.weekly and not newsletter.offers_weekly:
            raise InvalidInput(f"{newsletter.name} has no weekly digest")
        offered = set(offered_sections(session, subscription.newsletter_id, now))
        unknown = sorted(set(change.sections) - offered)
        if unknown:
            raise InvalidInput(f"unknown section: {', '.join(unknown)}")
        subscriber.name = clean_name(change.name)
        subscriber.timezone = timezone
        subscription.sections = sorted(set(change.sections))
        subscription.cadence = change.cadence
        suppressed = is_suppressed(session, subscriber.email)
        mine = session.scalars(
            select(Subscription).where(Subscription.subscriber_id == subscriber.id)
        )
        for each in mine:
            if each.status == SubscriptionStatus.active and each.id not in change.keep:
                each.status, each.unsubscribed_at = SubscriptionStatus.unsubscribed, now
                record(
                    session,
                    subscriber.id,
                    HistoryKind.unsubscribed,
                    "left in the preference centre",
                    now,
                    each.newsletter_id,
                    source="web",
                )
            elif (
                each.status == SubscriptionStatus.unsubscribed
                and each.id in change.keep
                and not suppressed
            ):
                # The signed link proves the address, so rejoining needs no new opt-in mail.
                # The original consent record stays: the rejoin is an event of its own.
                each.status, each.unsubscribed_at = SubscriptionStatus.active, None
                rejoined.append(each.id)
                record(
                    session,
                    subscriber.id,
                    HistoryKind.resubscribed,
                    "rejoined in the preference centre",
                    now,
                    each.newsletter_id,
                    source="web",
                )
        session.commit()
    return rejoined


def unsubscribe_everything(db: Database, subscription_id: int) -> bool:
    """Leave every newsletter of the linked subscriber; False if the link's subscription is
    gone."""
    now = utcnow()
    with db.session() as session:
        linked = _linked(session, subscription_id)
        if linked is None:
            return False
        leave(
            session,
            now,
            Subscription.subscriber_id == linked[1].id,
            source="web",
            detail="left everything in the preference centre",
        )
        session.commit()
    return True


def undo_unsubscribe(db: Database, subscription_id: int) -> bool:
    """Rejoin right after leaving (the goodbye page's "undo"); False if too late or
    suppressed."""
    now = utcnow()
    with db.session() as session:
        linked = _linked(session, subscription_id)
        if linked is None:
            return False
        subscription, subscriber = linked
        left = subscription.unsubscribed_at
        suppressed = is_suppressed(session, subscriber.email)
        if (
            subscription.status != SubscriptionStatus.unsubscribed
            or left is None
            or left < now - UNDO_WINDOW
            or suppressed
        ):
            return False
        # The original consent (and its double opt-in) stays as it was; the undo is an event.
        subscription.status, subscription.unsubscribed_at = SubscriptionStatus.active, None
        record(
            session,
            subscriber.id,
            HistoryKind.resubscribed,
            "undid the unsubscribe on the goodbye page",
            now,
            subscription.newsletter_id,
            source="web",
        )
        session.commit()
    return True
