"""The suppression list by hand: list it (paged by id, searchable), add one address, remove an
entry. Bulk suppression over a filter is in :mod:`tidings.audience.bulk`."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from tidings.audience.search import PAGE_SIZE
from tidings.db.clauses import keyset_page
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import Suppression, SuppressionReason
from tidings.db.types import utcnow
from tidings.errors import NotFound
from tidings.mail.addresses import normalise_email


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
                .on_conflict_do_nothing(index_elements=["email"]),
                execution_options=PRESERVE_ROWCOUNT,
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
