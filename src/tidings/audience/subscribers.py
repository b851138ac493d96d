"""One subscriber as the console and the API see them: everything stored about them (their
record), changing their fields, and erasing them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audience.erasure import erase_readers
from tidings.catalog.counts import ReaderStatus, status_of
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    HistoryKind,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from tidings.db.types import utcnow
from tidings.feedback.history import record
from tidings.mail.addresses import (
    DEFAULT_LIMITS,
    AttributeLimits,
    attributes_json,
    clean_locale,
    clean_name,
    clean_timezone,
)


@dataclass(frozen=True)
class SubscriptionRecord:
    id: int
    newsletter: str
    status: SubscriptionStatus
    cadence: str
    sections: list[str]
    consent_at: datetime | None
    consent_method: str | None
    consent_source: str | None
    consent_ip: str | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    newsletter_slug: str = ""
    #: What it amounts to (bounced or suppressed when the address is): the list's column.
    shown: ReaderStatus = ReaderStatus.active
    confirmation_sent_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    edition_id: int
    subject: str | None
    state: DeliveryState
    attempts: int
    last_attempt_at: datetime | None
    last_reply: str | None


@dataclass(frozen=True)
class SubscriberRecord:
    id: int
    email: str
    name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    created_at: datetime
    suppression: str | None
    subscriptions: list[SubscriptionRecord]
    deliveries: list[DeliveryRecord]


def subscriber_record(
    db: Database, subscriber_id: int, history: int = 50
) -> SubscriberRecord | None:
    """Everything stored about one subscriber, with their newest deliveries."""
    found = subscriber_records(db, [subscriber_id], history)
    return found[0] if found else None


def subscriber_records(
    db: Database, subscriber_ids: Sequence[int], history: int = 0
) -> list[SubscriberRecord]:
    """The records of these subscribers, in the order given (unknown ids left out), in a few
    queries for the whole list; with ``history``, each one's newest deliveries too."""
    if not subscriber_ids:
        return []
    with db.session() as session:
        people = {
            s.id: s
            for s in session.scalars(select(Subscriber).where(Subscriber.id.in_(subscriber_ids)))
        }
        emails = [s.email for s in people.values()]
        suppressions = dict(
            session.execute(
                select(Suppression.email, Suppression.reason).where(Suppression.email.in_(emails))
            ).all()
        )
        subscriptions: dict[int, list[SubscriptionRecord]] = {}
        for s, name, slug in session.execute(
            select(Subscription, Newsletter.name, Newsletter.slug)
            .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
            .where(Subscription.subscriber_id.in_(subscriber_ids))
            .order_by(Newsletter.name)
        ):
            reason = suppressions.get(people[s.subscriber_id].email)
            subscriptions.setdefault(s.subscriber_id, []).append(
                SubscriptionRecord(
                    s.id,
                    name,
                    s.status,
                    s.cadence.value,
                    list(s.sections or []),
                    s.consent_at,
                    s.consent_method,
                    s.consent_source,
                    s.consent_ip,
                    s.confirmed_at,
                    s.unsubscribed_at,
                    newsletter_slug=slug,
                    shown=status_of(s.status, reason),
                    confirmation_sent_at=s.confirmation_sent_at,
                )
            )
        records = []
        for subscriber_id in subscriber_ids:
            subscriber = people.get(subscriber_id)
            if subscriber is None:
                continue
            reason = suppressions.get(subscriber.email)
            records.append(
                SubscriberRecord(
                    subscriber.id,
                    subscriber.email,
                    subscriber.name,
                    subscriber.locale,
                    subscriber.timezone,
                    dict(subscriber.attributes or {}),
                    subscriber.created_at,
                    reason.value if reason else None,
                    subscriptions.get(subscriber.id, []),
                    _deliveries(session, subscriber.id, history) if history else [],
                )
            )
        return records


def _deliveries(session: Session, subscriber_id: int, history: int) -> list[DeliveryRecord]:
    return [
        DeliveryRecord(*row)
        for row in session.execute(
            select(
                Delivery.edition_id,
                Edition.subject,
                Delivery.state,
                Delivery.attempts,
                Delivery.last_attempt_at,
                Delivery.last_reply,
            )
            .join(Edition, Edition.id == Delivery.edition_id)
            .where(Delivery.subscriber_id == subscriber_id)
            .order_by(Delivery.id.desc())
            .limit(history)
        )
    ]


@dataclass(frozen=True)
class SubscriberChange:
    """Fields to change; None leaves a field as it is."""

    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    attributes: dict[str, str] | None = None


def update_subscriber(
    db: Database,
    subscriber_id: int,
    change: SubscriberChange,
    limits: AttributeLimits = DEFAULT_LIMITS,
    source: str = "api",
    by: str | None = None,
) -> bool:
    """Apply ``change``; False if there is no such subscriber. Bad values raise InvalidInput.

    Attributes merge key by key; an empty string removes a key; the result must stay within
    ``limits``. A change that changes something is an ``edited`` event (naming the fields,
    not their values) from ``source``, by ``by`` when known.
    """
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        before = (subscriber.name, subscriber.locale, subscriber.timezone, subscriber.attributes)
        if change.name is not None:
            subscriber.name = clean_name(change.name)
        if change.locale is not None:
            subscriber.locale = clean_locale(change.locale)
        if change.timezone is not None:
            subscriber.timezone = clean_timezone(change.timezone)
        if change.attributes is not None:
            merged = {**(subscriber.attributes or {}), **change.attributes}
            kept = {k: v for k, v in merged.items() if v != ""}
            attributes_json(kept, limits)
            subscriber.attributes = kept
        after = (subscriber.name, subscriber.locale, subscriber.timezone, subscriber.attributes)
        changed = [
            label for label, old, new in zip(FIELD_LABELS, before, after, strict=True) if old != new
        ]
        if changed:
            detail = "changed " + ", ".join(changed) + (f" (by {by})" if by else "")
            record(session, subscriber.id, HistoryKind.edited, detail, utcnow(), source=source)
        session.commit()
        return True


#: The fields :func:`update_subscriber` changes, as its ``edited`` event names them.
FIELD_LABELS = ("name", "locale", "time zone", "attributes")


def erase(db: Database, subscriber_id: int) -> bool:
    """GDPR erasure of one reader: the set-based erasure (:func:`erase_readers`, which says
    what goes and what stays) of a set of one; False if there is no such subscriber."""
    with db.session() as session:
        removed = erase_readers(
            session, select(Subscriber.id).where(Subscriber.id == subscriber_id)
        )
        session.commit()
        return bool(removed)
