"""What came back, for people to read: an edition's bounces and complaints, and the newest
inbound messages (the sender's health per domain is in :mod:`tidings.reports.senderhealth`).

Read-only: the inbound service and the feedback room write these rows; here they are counted
and listed (set-based, bounded, paged by id).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from tidings.db.clauses import KeysetPage, keyset_page
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryFeedback,
    DeliveryState,
    Edition,
    InboundMeaning,
    InboundMessage,
    Subscriber,
)
from tidings.errors import NotFound
from tidings.mail.status import BounceKind, classify

#: What an edition's bounce list shows of the inbound messages about its deliveries (an
#: auto-reply, an unsubscribe or an unverified message is no bounce).
CAME_BACK = (
    InboundMeaning.hard_bounce,
    InboundMeaning.soft_bounce,
    InboundMeaning.policy,
    InboundMeaning.complaint,
)
#: Inbound messages shown per delivery on a page at most (the newest): a page stays small
#: even if one reader's mail keeps bouncing.
CAME_BACK_PER_PAGE_ROW = 5


@dataclass(frozen=True)
class CameBack:
    """One inbound message (a DSN, a complaint, a webhook event) about a delivery."""

    id: int
    received_at: datetime
    channel: str
    provider: str | None
    meaning: InboundMeaning
    status: str | None
    diagnostic: str | None
    changes: str | None


#: The columns of a :class:`CameBack`, in its fields' order.
_CAME_BACK_COLUMNS = (
    InboundMessage.id,
    InboundMessage.received_at,
    InboundMessage.channel,
    InboundMessage.provider,
    InboundMessage.meaning,
    InboundMessage.status,
    InboundMessage.diagnostic,
    InboundMessage.changes,
)


@dataclass(frozen=True)
class EditionBounce:
    """A delivery of an edition that was refused at send time or that came back."""

    delivery_id: int
    #: None once the subscriber was erased.
    subscriber_id: int | None
    email: str | None
    state: DeliveryState
    feedback: DeliveryFeedback | None
    reply_code: int | None
    reply: str | None
    last_attempt_at: datetime | None
    came_back: tuple[CameBack, ...]

    @property
    def refusal(self) -> BounceKind | None:
        """The kind of the send-time refusal of a failed delivery (hard, soft, policy)."""
        if self.state != DeliveryState.failed:
            return None
        return classify(self.reply_code, None, self.reply or "")


@dataclass(frozen=True)
class FeedbackSummary:
    """How many of an edition's deliveries were refused at send time, bounced or complained
    about; ``total`` counts each delivery once."""

    total: int
    refused: int
    bounced: int
    complained: int


def _troubled(edition_id: int) -> ColumnElement[bool]:
    came_back = exists().where(
        InboundMessage.delivery_id == Delivery.id, InboundMessage.meaning.in_(CAME_BACK)
    )
    return and_(
        Delivery.edition_id == edition_id,
        or_(Delivery.state == DeliveryState.failed, Delivery.feedback.is_not(None), came_back),
    )


def _edition(session: Session, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise NotFound(f"no edition {edition_id}")
    return edition


def edition_feedback_summary(db: Database, edition_id: int) -> FeedbackSummary:
    """The counts of :class:`FeedbackSummary` for one edition (the console's edition page
    links to the list with them); :class:`NotFound` for no such edition."""
    with db.session() as session:
        _edition(session, edition_id)
        return _summary(session, edition_id)


def _summary(session: Session, edition_id: int) -> FeedbackSummary:
    """One query."""

    def count_of(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(
            func.count(),
            count_of(Delivery.state == DeliveryState.failed),
            count_of(Delivery.feedback == DeliveryFeedback.bounced),
            count_of(Delivery.feedback == DeliveryFeedback.complained),
        ).where(_troubled(edition_id))
    ).one()
    return FeedbackSummary(*(int(n) for n in row))


@dataclass(frozen=True)
class EditionFeedback:
    """An edition's bounce page: what it is, its counts, and one page of its rows."""

    edition_id: int
    subject: str | None
    summary: FeedbackSummary
    page: KeysetPage[EditionBounce]


def edition_bounces(
    db: Database, edition_id: int, after: int, size: int
) -> KeysetPage[EditionBounce]:
    """One page, by delivery id after ``after``, of the edition's deliveries refused at send
    time (failed) or that came back (bounced, complained, or an inbound bounce or complaint
    names them), each with what came back about it; :class:`NotFound` for no such edition."""
    with db.session() as session:
        _edition(session, edition_id)
        return _page(session, edition_id, after, size)


def edition_feedback(db: Database, edition_id: int, after: int, size: int) -> EditionFeedback:
    """:func:`edition_bounces` with the edition's subject and counts, in one session."""
    with db.session() as session:
        edition = _edition(session, edition_id)
        return EditionFeedback(
            edition_id,
            edition.subject,
            _summary(session, edition_id),
            _page(session, edition_id, after, size),
        )


def _page(session: Session, edition_id: int, after: int, size: int) -> KeysetPage[EditionBounce]:
    query = (
        select(
            Delivery.id,
            Delivery.subscriber_id,
            Subscriber.email,
            Delivery.state,
            Delivery.feedback,
            Delivery.last_reply_code,
            Delivery.last_reply,
            Delivery.last_attempt_at,
        )
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(_troubled(edition_id))
    )
    page = keyset_page(session, query, Delivery.id, after, size)
    came_back = _came_back(session, [row.id for row in page.rows])
    rows = [EditionBounce(*row, came_back=tuple(came_back.get(row.id, ()))) for row in page.rows]
    return KeysetPage(rows, page.next_after)


def _came_back(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[CameBack]]:
    """The bounces and complaints about these deliveries, oldest first (at most
    ``CAME_BACK_PER_PAGE_ROW`` each, the newest of them)."""
    if not delivery_ids:
        return {}
    newest_first = (
        func.row_number()
        .over(partition_by=InboundMessage.delivery_id, order_by=InboundMessage.id.desc())
        .label("newest_first")
    )
    ranked = (
        select(InboundMessage.delivery_id, *_CAME_BACK_COLUMNS, newest_first)
        .where(InboundMessage.delivery_id.in_(delivery_ids), InboundMessage.meaning.in_(CAME_BACK))
        .subquery()
    )
    rows = session.execute(
        select(*[column for column in ranked.c if column.name != "newest_first"])
        .where(ranked.c.newest_first <= CAME_BACK_PER_PAGE_ROW)
        .order_by(ranked.c.id)
    ).all()
    found: dict[int, list[CameBack]] = {}
    for delivery_id, *fields in rows:
        found.setdefault(delivery_id, []).append(CameBack(*fields))
    return found


@dataclass(frozen=True)
class InboundSeen(CameBack):
    """One inbound message of the recent list, with whom and what it was about."""

    recipient_domain: str | None
    subscriber_id: int | None
    delivery_id: int | None


def recent_inbound(db: Database, limit: int) -> list[InboundSeen]:
    """The newest inbound messages of any meaning, newest first (what the inbound path has
    been seeing, ignored ones included)."""
    with db.session() as session:
        rows = session.execute(
            select(
                *_CAME_BACK_COLUMNS,
                InboundMessage.recipient_domain,
                InboundMessage.subscriber_id,
                InboundMessage.delivery_id,
            )
            .order_by(InboundMessage.id.desc())
            .limit(limit)
        ).all()
    return [InboundSeen(*row) for row in rows]
