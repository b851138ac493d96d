"""Bulk actions on everyone an audience filter matches: each is one set-based statement over
the filter, never a loop over rows."""

from sqlalchemy import ColumnElement, Integer, cast, literal, null, select

from tidings.audience.erasure import erase_readers
from tidings.audience.membership import leave
from tidings.audience.search import AudienceFilter
from tidings.db.clauses import is_suppressed
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import (
    HistoryKind,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionReason,
)
from tidings.db.types import utcnow
from tidings.feedback.history import record_each, suppressed_detail


def bulk_unsubscribe(
    db: Database, audience: AudienceFilter, source: str = "console", detail: str | None = None
) -> int:
    """Unsubscribe everyone matched (from the filter's newsletter, else from all); each one
    gets an ``unsubscribed`` event from ``source``."""
    which: list[ColumnElement[bool]] = [Subscription.subscriber_id.in_(audience.subscriber_ids())]
    if audience.newsletter_id is not None:
        which.append(Subscription.newsletter_id == audience.newsletter_id)
    with db.session() as session:
        changed = leave(session, utcnow(), *which, source=source, detail=detail)
        session.commit()
        return changed


def bulk_suppress(
    db: Database, audience: AudienceFilter, detail: str, source: str = "console"
) -> int:
    """Put every matched address on the suppression list (one INSERT ... SELECT); each one
    not suppressed before gets a ``suppressed`` event from ``source`` (another)."""
    now = utcnow()
    with db.session() as session:
        newly = select(Subscriber.id, cast(null(), Integer)).where(
            *audience.where(), ~is_suppressed(Subscriber.email)
        )
        evidence = suppressed_detail(SuppressionReason.manual, detail)
        record_each(session, newly, HistoryKind.suppressed, evidence, now, source)
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
    """Erase every matched subscriber, as one erasure does (:func:`erase_readers`): their
    deliveries stay as anonymous counts, nothing naming them stays; how many went."""
    with db.session() as session:
        removed = erase_readers(session, audience.subscriber_ids())
        session.commit()
        return removed
