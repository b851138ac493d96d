"""Finding subscribers: the audience filter (newsletter, status, text) that lists and bulk
actions share, a page of matches, and how many there are.

Every list pages by id (``WHERE id > :after ORDER BY id LIMIT n``), so page 10,000 costs what
page 1 costs.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import aliased

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.clauses import is_suppressed, keyset_page
from tidings.db.engine import Database
from tidings.db.models import Subscriber, Subscription, SubscriptionStatus

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
