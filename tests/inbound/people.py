"""Readers of two newsletters with one queued edition of ``daily``, and the signed addresses
their mail carries: what the inbound tests feed bounces and complaints to."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from tidings.mail.returnpath import Role, tagged_address

DOMAIN = "messenger.example.ge"  # the From domain of tests.builders.SENDER


@dataclass(frozen=True)
class Reader:
    email: str
    subscriber_id: int
    delivery_id: int
    message_id: str
    #: The subscription to ``daily`` (the edition's newsletter) and to ``weekly``.
    subscription_id: int
    weekly_subscription_id: int
    return_path: str
    unsubscribe: str


def readers(db: Database, settings: Settings, count: int = 4) -> list[Reader]:
    """``count`` readers of ``daily`` and ``weekly``, and one ``daily`` edition queued."""
    newsletter(db, "daily")
    newsletter(db, "weekly")
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    emails = subscribers(db, "daily", count)
    subscribers(db, "weekly", count)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    found = []
    with db.session() as session:
        for email in emails:
            subscriber = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
            delivery = session.scalars(
                select(Delivery).where(Delivery.subscriber_id == subscriber.id)
            ).one()
            daily, weekly = (subscription_of(db, email, slug) for slug in ("daily", "weekly"))
            found.append(
                Reader(
                    email,
                    subscriber.id,
                    delivery.id,
                    delivery.message_id,
                    daily,
                    weekly,
                    tagged_address(settings.secret, Role.bounce, delivery.id, DOMAIN),
                    tagged_address(settings.secret, Role.unsubscribe, daily, DOMAIN),
                )
            )
    return found


def subscription_of(db: Database, email: str, slug: str) -> int:
    with db.session() as session:
        return session.scalars(
            select(Subscription.id)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
            .where(Subscriber.email == email, Newsletter.slug == slug)
        ).one()


def statuses(db: Database, email: str) -> dict[str, SubscriptionStatus]:
    """The reader's subscriptions: newsletter slug to status."""
    with db.session() as session:
        rows = session.execute(
            select(Newsletter.slug, Subscription.status)
            .join(Subscription, Subscription.newsletter_id == Newsletter.id)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email)
        ).all()
    return {slug: status for slug, status in rows}


def suppressed(db: Database) -> dict[str, str]:
    """Every suppressed address and its reason."""
    with db.session() as session:
        return {row.email: row.reason.value for row in session.scalars(select(Suppression))}
