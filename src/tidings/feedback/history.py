"""The subscriber's history: every change that what came back made to a reader (a bounce
point, a suppression, an unsubscribe), with its evidence, and an admin's undo of it.

:func:`record` is a query helper (it runs on the caller's session and never commits).
:func:`history_of` and :func:`undo` are services on a :class:`Database`, for the console and
the API: the first lists a subscriber's events, newest first; the second reverses one event
and says in a sentence what that changed.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Select, String, Text, delete, insert, literal, select, update
from sqlalchemy.orm import Session

from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    HistoryKind,
    Newsletter,
    Subscriber,
    SubscriberEvent,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.db.types import utcnow
from tidings.errors import Conflict, NotFound

#: Evidence is a diagnostic line or a short note: longer text is cut here.
DETAIL_LIMIT = 1000
#: The width of ``subscriber_events.source``.
SOURCE_LIMIT = 32
#: How a reader came: a sign-up, an add or an import, its confirmation and the mails that ask
#: for it. The rest of the history is what changed them afterwards.
ARRIVAL = frozenset(
    {
        HistoryKind.signed_up,
        HistoryKind.added,
        HistoryKind.imported,
        HistoryKind.confirmed,
        HistoryKind.confirm_mailed,
    }
)
#: The kinds an admin can undo (an undo itself is not undone: the reader signs up again, or
#: an admin suppresses the address by hand).
UNDOABLE = frozenset({HistoryKind.suppressed, HistoryKind.unsubscribed, HistoryKind.bounce_point})
#: Sources of an unsubscribe an admin made (the console, the API, the CLI). Any other source
#: (the reader's link, the preference centre, a mailto, a complaint, an import) is the reader
#: withdrawing consent.
ADMIN_SOURCES = frozenset({"console", "api", "cli"})


def consent_survives(unsubscribe_source: str | None) -> bool:
    """Whether a confirmed reader's consent outlives an unsubscribe from this source, so that
    undoing it makes them active again: only when an admin unsubscribed them. A reader who
    left by themself (any other source) must confirm again: they are made pending."""
    return unsubscribe_source in ADMIN_SOURCES


@dataclass(frozen=True)
class HistoryRow:
    """One event of a subscriber's history, as the console and the API show it."""

    id: int
    kind: HistoryKind
    #: The newsletter an unsubscribe (or its undo) was about; None for the address as a whole.
    newsletter_id: int | None
    newsletter_slug: str | None
    #: The evidence: the diagnostic line, the complaint's feedback type, who undid what.
    detail: str | None
    #: The inbound message or provider event that caused it (None for a send-time reply).
    inbound_id: int | None
    created_at: datetime
    undone_at: datetime | None
    undone_by: str | None
    #: Where it came from: web, api, cli, console, import, mail, inbound, ...
    source: str | None = None

    @property
    def undoable(self) -> bool:
        """Whether an admin may undo it now (a kind that can be, and not undone yet)."""
        return self.undone_at is None and self.kind in UNDOABLE


def record(
    session: Session,
    subscriber_id: int,
    kind: HistoryKind,
    detail: str | None,
    now: datetime,
    newsletter_id: int | None = None,
    inbound_id: int | None = None,
    source: str | None = None,
) -> None:
    """Write one event of a subscriber's history (the evidence cut to ``DETAIL_LIMIT``);
    ``source`` says where it came from (web, api, cli, console, import, mail, inbound, ...).

    History is append-only: an event is never rewritten, only marked undone."""
    if source is None and inbound_id is not None:
        source = "inbound"
    session.execute(
        insert(SubscriberEvent).values(
            subscriber_id=subscriber_id,
            kind=kind,
            newsletter_id=newsletter_id,
            detail=detail[:DETAIL_LIMIT] if detail is not None else None,
            inbound_id=inbound_id,
            source=source[:SOURCE_LIMIT] if source is not None else None,
            created_at=now,
        )
    )


def record_each(
    runner: Session | Connection,
    who: Select[int, int],
    kind: HistoryKind,
    detail: str | None,
    now: datetime,
    source: str,
) -> int:
    """Write one event per row of ``who`` (subscriber id, newsletter id) in one
    INSERT ... SELECT: bulk actions and imports record their history set-based, not in a
    loop. Returns how many events were written."""
    rows = who.subquery()
    events = select(
        rows.c[0],
        literal(kind, SubscriberEvent.kind.type),
        rows.c[1],
        literal(detail[:DETAIL_LIMIT] if detail is not None else None, Text()),
        literal(source[:SOURCE_LIMIT], String()),
        literal(now, SubscriberEvent.created_at.type),
    )
    written = runner.execute(
        insert(SubscriberEvent).from_select(
            ["subscriber_id", "kind", "newsletter_id", "detail", "source", "created_at"], events
        ),
        execution_options=PRESERVE_ROWCOUNT,
    )
    return row_count(written)


def point_day(moment: datetime) -> date:
    """The day (in UTC) a bounce point at ``moment`` belongs to: one point per address a day."""
    return moment.astimezone(UTC).date()


def suppressed_detail(reason: SuppressionReason, evidence: str) -> str:
    """The evidence of a ``suppressed`` event, led by the suppression's reason
    (``hard_bounce: 550 5.1.1 user unknown``): :func:`undo` reads the reason back from it."""
    return f"{reason.value}: {evidence}"


def _reason_of(detail: str | None) -> SuppressionReason | None:
    head = (detail or "").partition(":")[0]
    return SuppressionReason(head) if head in SuppressionReason.__members__ else None


def history_of(db: Database, subscriber_id: int) -> list[HistoryRow]:
    """A subscriber's history, newest first; :class:`NotFound` for an unknown subscriber."""
    with db.session() as session:
        if session.get(Subscriber, subscriber_id) is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        rows = session.execute(
            select(
                SubscriberEvent.id,
                SubscriberEvent.kind,
                SubscriberEvent.newsletter_id,
                Newsletter.slug,
                SubscriberEvent.detail,
                SubscriberEvent.inbound_id,
                SubscriberEvent.created_at,
                SubscriberEvent.undone_at,
                SubscriberEvent.undone_by,
                SubscriberEvent.source,
            )
            .outerjoin(Newsletter, Newsletter.id == SubscriberEvent.newsletter_id)
            .where(SubscriberEvent.subscriber_id == subscriber_id)
            .order_by(SubscriberEvent.id.desc())
        ).all()
    return [HistoryRow(*row[:9], source=row[9]) for row in rows]


def undo(db: Database, event_id: int, by: str, source: str = "console") -> str:
    """Reverse one event of a subscriber's history, as the admin ``by`` (through ``source``:
    console or api); what it changed.

    - ``suppressed``: the suppression is removed (an ``unsuppressed`` event is written); an
      address suppressed meanwhile for another reason stays suppressed, and :class:`Conflict`
      says so (undo that event instead). A soft-bounce suppression also forgets the address's
      bounce points, so the next soft bounce does not suppress it again at once.
    - ``unsubscribed``: that subscription is subscribed again (``resubscribed``): active if
      it had been confirmed, else pending; the sentence says when the address is still
      suppressed, since the reader then still gets nothing.
    - ``bounce_point``: that day's point is removed.

    The event is marked undone (when, by whom). :class:`NotFound` for an unknown event;
    :class:`Conflict` for one already undone, or of a kind that cannot be undone.
    """
    now = utcnow()
    with db.session() as session:
        event = session.get(SubscriberEvent, event_id)
        if event is None:
            raise NotFound(f"no history event {event_id}")
        if event.kind not in UNDOABLE:
            raise Conflict(f"event {event_id} ({event.kind.value}) cannot be undone")
        email = session.get_one(Subscriber, event.subscriber_id).email
        if event.kind == HistoryKind.suppressed:
            said = _unsuppress(session, event, email, by, now, source)
        elif event.kind == HistoryKind.unsubscribed:
            said = _resubscribe(session, event, email, by, now, source)
        else:
            said = _remove_point(session, event, email)
        marked = session.execute(
            update(SubscriberEvent)
            .where(SubscriberEvent.id == event_id, SubscriberEvent.undone_at.is_(None))
            .values(undone_at=now, undone_by=by[:320])
            .execution_options(synchronize_session=False)
        )
        if not row_count(marked):
            session.rollback()
            raise Conflict(f"event {event_id} was undone already")
        session.commit()
        return said


def _unsuppress(
    session: Session, event: SubscriberEvent, email: str, by: str, now: datetime, source: str
) -> str:
    reason = _reason_of(event.detail)
    current = session.scalar(select(Suppression).where(Suppression.email == email))
    if current is None:
        return f"nothing: {email} was no longer suppressed"
    if reason is not None and current.reason != reason:
        raise Conflict(
            f"{email} is suppressed now for another reason ({current.reason.value}), not "
            f"{reason.value}: undo that change instead, or remove the suppression by hand"
        )
    session.execute(delete(Suppression).where(Suppression.id == current.id))
    said = f"removed the suppression of {email} ({current.reason.value})"
    if current.reason == SuppressionReason.soft_bounce:
        session.execute(delete(BouncePoint).where(BouncePoint.email == email))
        said += " and its bounce points"
    note = f"undo of event {event.id} by {by}"
    record(session, event.subscriber_id, HistoryKind.unsuppressed, note, now, source=source)
    return said


def _resubscribe(
    session: Session, event: SubscriberEvent, email: str, by: str, now: datetime, source: str
) -> str:
    subscription = session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == event.subscriber_id,
            Subscription.newsletter_id == event.newsletter_id,
        )
    )
    if subscription is None:
        return f"nothing: {email} has no subscription to that newsletter any more"
    slug = session.scalar(select(Newsletter.slug).where(Newsletter.id == event.newsletter_id))
    if subscription.status != SubscriptionStatus.unsubscribed:
        return f"nothing: {email} is subscribed to {slug} again ({subscription.status.value})"
    status = (
        SubscriptionStatus.active
        if subscription.confirmed_at is not None and consent_survives(event.source)
        else SubscriptionStatus.pending
    )
    subscription.status = status
    subscription.unsubscribed_at = None
    subscription.updated_at = now
    note = f"undo of event {event.id} by {by}"
    record(
        session,
        event.subscriber_id,
        HistoryKind.resubscribed,
        note,
        now,
        newsletter_id=event.newsletter_id,
        source=source,
    )
    said = f"subscribed {email} to {slug} again ({status.value})"
    still = session.scalar(select(Suppression.reason).where(Suppression.email == email))
    if still is not None:
        said += f"; the address is still suppressed ({still.value}), so nothing is sent to it"
    return said


def _remove_point(session: Session, event: SubscriberEvent, email: str) -> str:
    day = point_day(event.created_at)
    removed = row_count(
        session.execute(
            delete(BouncePoint).where(BouncePoint.email == email, BouncePoint.day == day)
        )
    )
    if not removed:
        return f"nothing: {email} had no bounce point on {day.isoformat()} any more"
    return f"removed the bounce point of {day.isoformat()} for {email}"
