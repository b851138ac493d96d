"""The suppression list by hand: list it (paged by id, searchable), add one address, remove an
entry; and whether a subscription's reader is suppressed, as SQL. Bulk suppression over a
filter is in :mod:`tidings.audience.bulk`."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Exists, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from tidings.audience.search import PAGE_SIZE
from tidings.db.clauses import is_suppressed, keyset_page
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import HistoryKind, Subscriber, Suppression, SuppressionReason
from tidings.db.types import utcnow
from tidings.errors import NotFound
from tidings.feedback.history import record, suppressed_detail
from tidings.mail.addresses import normalise_email


def reader_suppressed(subscriber_id: ColumnElement[int] | InstrumentedAttribute[int]) -> Exists:
    """True when the subscriber that ``subscriber_id`` names (a subscription's reader, say)
    has a suppressed address (:func:`is_suppressed`).

    Their address is a subquery keyed on that one subscriber (a primary-key lookup), which
    PostgreSQL cannot turn into a join: so each subscription asked about costs one lookup,
    never a read of every subscriber. ``subscriber_id NOT IN (the suppressed subscribers)``
    read all 300,000 (4,300 pages) to claim one confirmation; a join to subscribers, for
    the 3,000 waiting confirmations, made the planner hash every subscriber too."""
    # Aliased and correlated by hand: a query that joins Subscriber itself must not
    # correlate this lookup away.
    reader = aliased(Subscriber)
    address = select(reader.email).where(reader.id == subscriber_id).correlate_except(reader)
    return is_suppressed(address.scalar_subquery())


@dataclass(frozen=True)
class SuppressionRow:
    id: int
    email: str
    reason: SuppressionReason
    detail: str | None
    created_at: datetime


def suppressions(
    db: Database, query: str = "", after: int = 0, size: int = PAGE_SIZE
) -> tuple[list[SuppressionRow], int | None]:
    """One page of the list by id (``size`` entries), those whose address contains
    ``query``; and the id to start the next page after."""
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
        page = keyset_page(session, statement, Suppression.id, after, size)
    return [SuppressionRow(*row) for row in page.rows], page.next_after


def suppress(
    db: Database,
    email: str,
    detail: str | None,
    reason: SuppressionReason = SuppressionReason.manual,
    source: str = "console",
) -> bool:
    """Add one address by hand; False if it was already there. A subscriber with that
    address gets a ``suppressed`` event from ``source`` (which an admin can undo)."""
    address = normalise_email(email)
    now = utcnow()
    with db.session() as session:
        added = row_count(
            session.execute(
                upsert_insert(session)(Suppression)
                .values(email=address, reason=reason, detail=detail, created_at=now)
                .on_conflict_do_nothing(index_elements=["email"]),
                execution_options=PRESERVE_ROWCOUNT,
            )
        )
        subscriber_id = _subscriber_id(session, address)
        if added and subscriber_id is not None:
            evidence = suppressed_detail(reason, detail or "by hand")
            record(session, subscriber_id, HistoryKind.suppressed, evidence, now, source=source)
        session.commit()
        return bool(added)


def suppression_of(db: Database, email: str) -> SuppressionRow | None:
    """The suppression of one address, or None."""
    with db.session() as session:
        row = session.execute(
            select(
                Suppression.id,
                Suppression.email,
                Suppression.reason,
                Suppression.detail,
                Suppression.created_at,
            ).where(Suppression.email == normalise_email(email))
        ).first()
    return SuppressionRow(*row) if row else None


def unsuppress(db: Database, suppression_id: int, source: str = "console", by: str = "") -> bool:
    """Remove an entry (an admin's decision, e.g. a bounce that was the server's fault); a
    subscriber with that address gets an ``unsuppressed`` event from ``source``."""
    with db.session() as session:
        email = session.scalar(select(Suppression.email).where(Suppression.id == suppression_id))
        removed = row_count(
            session.execute(delete(Suppression).where(Suppression.id == suppression_id))
        )
        if not removed or email is None:
            raise NotFound("no such suppression")
        subscriber_id = _subscriber_id(session, email)
        if subscriber_id is not None:
            note = f"removed by {by}" if by else "removed by hand"
            record(session, subscriber_id, HistoryKind.unsuppressed, note, utcnow(), source=source)
        session.commit()
        return True


def _subscriber_id(session: Session, email: str) -> int | None:
    return session.scalar(select(Subscriber.id).where(Subscriber.email == email))
