"""Finding subscribers: the audience filter (newsletter, status, text) that lists and bulk
actions share, a page of matches, and how many there are.

Every list pages by id (``WHERE id > :after ORDER BY id LIMIT n``), so page 10,000 costs what
page 1 costs.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from tidings.catalog.counts import BOUNCES, ReaderStatus, reader_status
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.clauses import is_suppressed, keyset_page
from tidings.db.engine import Database
from tidings.db.models import (
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class AudienceFilter:
    """Who a list or a bulk action is about; empty fields do not filter."""

    newsletter_id: int | None = None
    #: A subscription in this status (in the newsletter, if one is chosen); a suppressed
    #: address is bounced or suppressed, never active or pending (:func:`reader_status`).
    status: ReaderStatus | None = None
    query: str = ""

    def where(self, after: int = 0) -> list[Any]:
        """The conditions on ``Subscriber``. ``after``: only subscribers above that id are
        wanted (a keyset page); said of their subscription too, so its index is entered
        there, not read from the start (PostgreSQL carries no range across a join: page
        2,000 of a newsletter's active readers read 97,000 index entries for 51 rows)."""
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
            if after:
                member = member.where(theirs.subscriber_id > after)
            if self.newsletter_id is not None:
                member = member.where(theirs.newsletter_id == self.newsletter_id)
            if self.status is not None:
                mine, suppression = _status_is(self.status, theirs.status)
                member = member.where(*mine)
                conditions.append(suppression)
            conditions.append(member)
        return conditions

    def subscriber_ids(self) -> Select[int]:
        return select(Subscriber.id).where(*self.where())


def _status_is(
    status: ReaderStatus, subscription_status: InstrumentedAttribute[SubscriptionStatus]
) -> tuple[list[ColumnElement[bool]], ColumnElement[bool]]:
    """``reader_status(subscription_status, Subscriber.email) == status``, split in what the
    subscription must be and what the subscriber's suppression must be, so that indexes serve
    both (a list page reads a few subscribers by id, not every subscription joined to every
    subscriber, 300 ms at 450,000 subscriptions).

    Suppression outranks the subscription's own status (:func:`reader_status`): an active,
    pending or unsubscribed subscription is shown so only while its address is not
    suppressed; a suppressed address shows as bounced (a bounce reason) or suppressed (any
    other), whatever its subscription's status. tests/audience/test_audience_scale.py checks
    that the two agree for every status."""
    if status in (ReaderStatus.bounced, ReaderStatus.suppressed):
        bounced = Suppression.reason.in_(BOUNCES)
        why = bounced if status == ReaderStatus.bounced else ~bounced
        return [], exists().where(Suppression.email == Subscriber.email, why)
    return [subscription_status == status.value], ~is_suppressed(Subscriber.email)


def audience_filter(
    db: Database,
    newsletter_slug: str | None,
    status: ReaderStatus | SubscriptionStatus | None,
    query: str,
) -> AudienceFilter:
    """The filter for a newsletter named by slug (:class:`NotFound` if there is none)."""
    newsletter_id = None
    if newsletter_slug:
        with db.session() as session:
            newsletter_id = newsletter_by_slug(session, newsletter_slug).id
    shown = ReaderStatus(status.value) if status is not None else None
    return AudienceFilter(newsletter_id, shown, query[:200])


@dataclass(frozen=True)
class Membership:
    """One of a listed subscriber's subscriptions, as the list's status column shows it."""

    subscription_id: int
    newsletter_slug: str
    newsletter_name: str
    status: ReaderStatus


@dataclass(frozen=True)
class SubscriberRow:
    id: int
    email: str
    name: str | None
    created_at: datetime
    suppressed: bool
    #: Their subscriptions (only the filter's newsletter's, when one is chosen).
    memberships: list[Membership] = field(default_factory=list)


@dataclass(frozen=True)
class SubscriberPage:
    rows: list[SubscriberRow]
    next_after: int | None


def search(
    db: Database, audience: AudienceFilter, after: int = 0, size: int = PAGE_SIZE
) -> SubscriberPage:
    """One page of subscribers matching the filter, by id, each with the status of their
    subscriptions (one more query for the whole page)."""
    statement = select(
        Subscriber.id,
        Subscriber.email,
        Subscriber.name,
        Subscriber.created_at,
        is_suppressed(Subscriber.email).label("suppressed"),
    ).where(*audience.where(after))
    with db.session() as session:
        page = keyset_page(session, statement, Subscriber.id, after, size)
        ids = [row[0] for row in page.rows]
        memberships = _memberships(session, ids, audience.newsletter_id)
    return SubscriberPage(
        [SubscriberRow(*row, memberships=memberships.get(row[0], [])) for row in page.rows],
        page.next_after,
    )


def _memberships(
    session: Session, subscriber_ids: list[int], newsletter_id: int | None
) -> dict[int, list[Membership]]:
    found: dict[int, list[Membership]] = {}
    if not subscriber_ids:
        return found
    statement = (
        select(
            Subscription.subscriber_id,
            Subscription.id,
            Newsletter.slug,
            Newsletter.name,
            reader_status(),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
        .where(Subscription.subscriber_id.in_(subscriber_ids))
        .order_by(Subscription.subscriber_id, Newsletter.name)
    )
    if newsletter_id is not None:
        statement = statement.where(Subscription.newsletter_id == newsletter_id)
    for subscriber_id, subscription_id, slug, name, status in session.execute(statement):
        found.setdefault(subscriber_id, []).append(
            Membership(subscription_id, slug, name, ReaderStatus(str(status)))
        )
    return found


def count(db: Database, audience: AudienceFilter) -> int:
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Subscriber).where(*audience.where()))
            or 0
        )
