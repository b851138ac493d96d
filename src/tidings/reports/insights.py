"""What the console's dashboard shows: counts per newsletter, next sends, a 90-day history.

All set-based: grouped counts, never a loop over subscribers or deliveries.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from tidings.catalog.counts import ReaderStatus, subscription_counts
from tidings.crontab import next_runs
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import (
    DeliveryState,
    Edition,
    Newsletter,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.deliver.ledger import state_counts
from tidings.reports.progress import EditionProgress, list_editions

HISTORY_DAYS = 90
Timestamp = ColumnElement[Any] | QueryableAttribute[Any]


@dataclass(frozen=True)
class NewsletterOverview:
    id: int
    slug: str
    name: str
    timezone: str
    counts: dict[str, int]
    next_send: datetime | None
    editions: list[EditionProgress]


def _status_counts(session: Session) -> dict[tuple[int, str], int]:
    """Subscriptions per newsletter and status, as :func:`subscription_counts` sorts them; the
    dashboard's "suppressed" is every suppressed address's subscriptions, bounced or not, and
    none of them counts as active (the console's list and the export say the same)."""
    counts: dict[tuple[int, str], int] = {}
    for (newsletter_id, status), total in subscription_counts(session).items():
        shown = ReaderStatus.suppressed.value if status == ReaderStatus.bounced else str(status)
        counts[(newsletter_id, shown)] = counts.get((newsletter_id, shown), 0) + total
    return counts


def overview(db: Database) -> list[NewsletterOverview]:
    """Every newsletter with its subscriber counts, next send and newest editions."""
    now = utcnow()
    with db.session() as session:
        counts = _status_counts(session)
        newsletters = session.scalars(select(Newsletter).order_by(Newsletter.name)).all()
    result = []
    for n in newsletters:
        try:
            upcoming = next_runs(n.schedule_cron, n.timezone, 1, now)
        except (ValueError, LookupError):  # an unreadable schedule: "none", the rest is shown
            upcoming = []
        result.append(
            NewsletterOverview(
                id=n.id,
                slug=n.slug,
                name=n.name,
                timezone=n.timezone,
                counts={
                    state: counts.get((n.id, state), 0)
                    for state in ("active", "pending", "unsubscribed", "suppressed")
                },
                next_send=upcoming[0] if upcoming else None,
                editions=list_editions(db, n.slug, limit=5),
            )
        )
    return result


@dataclass(frozen=True)
class DayPoint:
    day: date
    subscribers: int
    sent: int


def _day(session: Session, column: Timestamp) -> ColumnElement[date]:
    if is_postgres(session):
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _per_day(session: Session, column: Timestamp, *where: ColumnElement[bool]) -> dict[date, int]:
    day = _day(session, column).label("day")
    rows = session.execute(select(day, func.count()).where(*where).group_by(day))
    return {(d if isinstance(d, date) else date.fromisoformat(str(d))): n for d, n in rows}


def _sent_per_day(session: Session, newsletter_id: int | None, start: datetime) -> dict[date, int]:
    """Messages sent by the editions started each day: the stored final counts of finished
    editions, and a count of the ledger only for the few still going."""
    query = select(Edition.id, Edition.started_at, Edition.final_counts).where(
        Edition.started_at >= start
    )
    if newsletter_id:
        query = query.where(Edition.newsletter_id == newsletter_id)
    sent: dict[date, int] = {}
    for edition_id, started_at, final in session.execute(query):
        if started_at is None:
            continue
        if final is not None:
            count = int(final.get(DeliveryState.sent.value, 0))
        else:
            count = state_counts(session, edition_id).get(DeliveryState.sent, 0)
        day = started_at.astimezone(UTC).date()
        sent[day] = sent.get(day, 0) + count
    return sent


def history(db: Database, newsletter_id: int | None, days: int = HISTORY_DAYS) -> list[DayPoint]:
    """Active subscribers at the end of each day, and messages sent by that day's editions."""
    today = utcnow().date()
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    joined_at = func.coalesce(Subscription.confirmed_at, Subscription.created_at)
    scope = [Subscription.newsletter_id == newsletter_id] if newsletter_id else []
    counted = Subscription.status != SubscriptionStatus.pending
    with db.session() as session:
        before = (
            session.scalar(
                select(func.count())
                .where(counted, joined_at < start, *scope)
                .select_from(Subscription)
            )
            or 0
        )
        left_before = (
            session.scalar(
                select(func.count())
                .where(Subscription.unsubscribed_at < start, *scope)
                .select_from(Subscription)
            )
            or 0
        )
        joins = _per_day(session, joined_at, counted, joined_at >= start, *scope)
        leaves = _per_day(
            session, Subscription.unsubscribed_at, Subscription.unsubscribed_at >= start, *scope
        )
        sent = _sent_per_day(session, newsletter_id, start)
    total = before - left_before
    points = []
    for offset in range(days):
        day = today - timedelta(days=days - 1 - offset)
        total += joins.get(day, 0) - leaves.get(day, 0)
        points.append(DayPoint(day, total, sent.get(day, 0)))
    return points
