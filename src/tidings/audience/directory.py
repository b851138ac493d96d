"""The console's view of the audience: search with keyset paging, one subscriber's record,
bulk actions on a filter, erasure, and the suppression list.

Every list pages by id (``WHERE id > :after ORDER BY id LIMIT n``), so page 10,000 costs what
page 1 costs; bulk actions are one set-based statement over the same filter.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, func, literal, or_, select
from sqlalchemy.orm import aliased

from tidings.audience.membership import leave
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.clauses import is_suppressed, keyset_page
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.db.types import utcnow
from tidings.errors import NotFound
from tidings.mail.addresses import (
    DEFAULT_LIMITS,
    AttributeLimits,
    attributes_json,
    clean_locale,
    clean_name,
    clean_timezone,
    normalise_email,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class AudienceFilter:
    """Who a list or a bulk action is about; empty fields do not filter."""

    newsletter_id: int | None = None
    status: SubscriptionStatus | None = None
    query: str = ""

    def where(self) -> list[Any]:
        conditions: list[Any] = []
        needle = self.query.strip().lower()
        if needle:
            conditions.append(
                or_(
                    Subscriber.email.contains(needle, autoescape=True),
                    func.lower(Subscriber.name).contains(needle, autoescape=True),
                )
            )
        if self.newsletter_id is not None or self.status is not None:
            # Aliased, so the filter also works inside queries that join subscriptions.
            theirs = aliased(Subscription)
            member = exists().where(theirs.subscriber_id == Subscriber.id)
            if self.newsletter_id is not None:
                member = member.where(theirs.newsletter_id == self.newsletter_id)
            if self.status is not None:
                member = member.where(theirs.status == self.status)
            conditions.append(member)
        return conditions

    def subscriber_ids(self) -> Select[int]:
        return select(Subscriber.id).where(*self.where())


def audience_filter(
    db: Database, newsletter_slug: str | None, status: SubscriptionStatus | None, query: str
) -> AudienceFilter:
    """The filter for a newsletter named by slug (:class:`NotFound` if there is none)."""
    newsletter_id = None
    if newsletter_slug:
        with db.session() as session:
            newsletter_id = newsletter_by_slug(session, newsletter_slug).id
    return AudienceFilter(newsletter_id, status, query[:200])


@dataclass(frozen=True)
class SubscriberRow:
    id: int
    email: str
    name: str | None
    created_at: datetime
    suppressed: bool


@dataclass(frozen=True)
class SubscriberPage:
    rows: list[SubscriberRow]
    next_after: int | None


def search(db: Database, audience: AudienceFilter, after: int = 0) -> SubscriberPage:
    """One page of subscribers matching the filter, by id."""
    statement = select(
        Subscriber.id,
        Subscriber.email,
        Subscriber.name,
        Subscriber.created_at,
        is_suppressed(Subscriber.email).label("suppressed"),
    ).where(*audience.where())
    with db.session() as session:
        page = keyset_page(session, statement, Subscriber.id, after, PAGE_SIZE)
    return SubscriberPage([SubscriberRow(*row) for row in page.rows], page.next_after)


def count(db: Database, audience: AudienceFilter) -> int:
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Subscriber).where(*audience.where()))
            or 0
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
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return None
        suppression = session.scalar(
            select(Suppression.reason).where(Suppression.email == subscriber.email)
        )
        subscriptions = [
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
            )
            for s, name in session.execute(
                select(Subscription, Newsletter.name)
                .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
                .where(Subscription.subscriber_id == subscriber_id)
                .order_by(Newsletter.name)
            )
        ]
        deliveries = [
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
        return SubscriberRecord(
            subscriber.id,
            subscriber.email,
            subscriber.name,
            subscriber.locale,
            subscriber.timezone,
            dict(subscriber.attributes or {}),
            subscriber.created_at,
            suppression.value if suppression else None,
            subscriptions,
            deliveries,
        )


def bulk_unsubscribe(db: Database, audience: AudienceFilter) -> int:
    """Unsubscribe everyone matched (from the filter's newsletter, else from all)."""
    which: list[ColumnElement[bool]] = [Subscription.subscriber_id.in_(audience.subscriber_ids())]
    if audience.newsletter_id is not None:
        which.append(Subscription.newsletter_id == audience.newsletter_id)
    with db.session() as session:
        changed = leave(session, utcnow(), *which)
        session.commit()
        return changed


def bulk_suppress(db: Database, audience: AudienceFilter, detail: str) -> int:
    """Put every matched address on the suppression list (one INSERT ... SELECT)."""
    now = utcnow()
    with db.session() as session:
        emails = select(
            Subscriber.email,
            literal(SuppressionReason.manual.value),
            literal(detail),
            literal(now, Suppression.created_at.type),
        ).where(*audience.where())
        statement = (
            upsert_insert(session)(Suppression)
            .from_select(["email", "reason", "detail", "created_at"], emails)
            .on_conflict_do_nothing(index_elements=["email"])
        )
        added = row_count(session.execute(statement, execution_options=PRESERVE_ROWCOUNT))
        session.commit()
        return int(added)


def bulk_delete(db: Database, audience: AudienceFilter) -> int:
    """Delete every matched subscriber; their deliveries stay as anonymous counts."""
    with db.session() as session:
        removed = row_count(
            session.execute(delete(Subscriber).where(Subscriber.id.in_(audience.subscriber_ids())))
        )
        session.commit()
        return int(removed)


def erase(db: Database, subscriber_id: int) -> bool:
    """GDPR erasure: the person and their subscriptions go; the ledger keeps anonymous rows
    (subscriber_id becomes NULL), so sent counts stay right."""
    with db.session() as session:
        removed = row_count(
            session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
        )
        session.commit()
        return bool(removed)


@dataclass(frozen=True)
class SuppressionRow:
    id: int
    email: str
    reason: SuppressionReason
    detail: str | None
    created_at: datetime


def suppressions(
    db: Database, query: str = "", after: int = 0
) -> tuple[list[SuppressionRow], int | None]:
    needle = query.strip().lower()
    with db.session() as session:
        statement = select(
            Suppression.id,
            Suppression.email,
            Suppression.reason,
            Suppression.detail,
            Suppression.created_at,
        )
        if needle:
            statement = statement.where(Suppression.email.contains(needle, autoescape=True))
        page = keyset_page(session, statement, Suppression.id, after, PAGE_SIZE)
    return [SuppressionRow(*row) for row in page.rows], page.next_after


def suppress(db: Database, email: str, detail: str | None) -> bool:
    """Add one address by hand; False if it was already there."""
    address = normalise_email(email)
    with db.session() as session:
        added = row_count(
            session.execute(
                upsert_insert(session)(Suppression)
                .values(
                    email=address,
                    reason=SuppressionReason.manual,
                    detail=detail,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["email"])
            )
        )
        session.commit()
        return bool(added)


def unsuppress(db: Database, suppression_id: int) -> bool:
    """Remove an entry (an admin's decision, e.g. a bounce that was the server's fault)."""
    with db.session() as session:
        removed = row_count(
            session.execute(delete(Suppression).where(Suppression.id == suppression_id))
        )
        session.commit()
        if not removed:
            raise NotFound("no such suppression")
        return True


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
) -> bool:
    """Apply ``change``; False if there is no such subscriber. Bad values raise InvalidInput.

    Attributes merge key by key; an empty string removes a key; the result must stay within
    ``limits``.
    """
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
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
        session.commit()
        return True
