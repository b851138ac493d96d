"""What came back, for people to read: an edition's bounces and complaints, and the newest
inbound messages (the sender's health per domain is in :mod:`tidings.reports.senderhealth`).

Read-only: the inbound service and the feedback room write these rows; here they are counted
and listed (set-based, bounded, paged by id).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Subquery, case, func, select, union
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
#: How far apart the clocks of the host that made an edition and the one that received what
#: came back about it may be.
CLOCK_MARGIN = timedelta(hours=1)
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


def _troubled(edition: Edition) -> Subquery:
    """The ids (``id``) of the edition's deliveries refused at send time, bounced or
    complained about, or named by an inbound bounce or complaint: each kind found through
    its own index (the refused and the fed-back ones are indexed per edition; the inbound
    ones came back after the edition was made, by their time), so an edition of a million
    is not read whole for its few troubled rows."""
    of_edition = Delivery.edition_id == edition.id
    refused = select(Delivery.id).where(of_edition, Delivery.state == DeliveryState.failed)
    fed_back = select(Delivery.id).where(of_edition, Delivery.feedback.is_not(None))
    came_back = (
        select(InboundMessage.delivery_id)
        .join(Delivery, Delivery.id == InboundMessage.delivery_id)
        .where(
            of_edition,
            InboundMessage.meaning.in_(CAME_BACK),
            # Nothing comes back before it was sent; the margin covers hosts' clocks.
            InboundMessage.received_at >= edition.created_at - CLOCK_MARGIN,
        )
    )
    return union(refused, fed_back, came_back).subquery()


def _edition(session: Session, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise NotFound(f"no edition {edition_id}")
    return edition


def edition_feedback_summary(db: Database, edition_id: int) -> FeedbackSummary:
    """The counts of :class:`FeedbackSummary` for one edition (the console's edition page
    links to the list with them); :class:`NotFound` for no such edition."""
    with db.session() as session:
        return _summary(session, _edition(session, edition_id))


def _summary(session: Session, edition: Edition) -> FeedbackSummary:
    """One query."""

    def count_of(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(
            func.count(),
            count_of(Delivery.state == DeliveryState.failed),
            count_of(Delivery.feedback == DeliveryFeedback.bounced),
            count_of(Delivery.feedback == DeliveryFeedback.complained),
        ).where(Delivery.id.in_(select(_troubled(edition).c.id)))
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
        return _page(session, _edition(session, edition_id), after, size)


def edition_feedback(db: Database, edition_id: int, after: int, size: int) -> EditionFeedback:
    """:func:`edition_bounces` with the edition's subject and counts, in one session."""
    with db.session() as session:
        edition = _edition(session, edition_id)
        return EditionFeedback(
            edition_id,
            edition.subject,
            _summary(session, edition),
            _page(session, edition, after, size),
        )


def _page(session: Session, edition: Edition, after: int, size: int) -> KeysetPage[EditionBounce]:
    # The page's ids from the few troubled ones first, then their rows: asked as one, the
    # planner walked the deliveries in id order (most of the table) to fill a page.
    troubled = _troubled(edition)
    ids = keyset_page(session, select(troubled.c.id), troubled.c.id, after, size)
    found = session.execute(
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
        .where(Delivery.id.in_([row.id for row in ids.rows]))
        .order_by(Delivery.id)
    ).all()
    came_back = _came_back(session, [row.id for row in found])
    rows = [EditionBounce(*row, came_back=tuple(came_back.get(row.id, ()))) for row in found]
    return KeysetPage(rows, ids.next_after)


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
