"""An edition becomes ``sent`` the moment its last delivery is final.

The one home of that rule: the result writer closes the editions of the batch it has just
written (in the same transaction), the upkeep closes what older code left behind, and an
editor's pause or cancel that arrives when nothing is left to send is refused by the same
condition (:data:`nothing_open`).
"""

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tidings.db.models import Edition, EditionStatus
from tidings.deliver.ledger.states import open_of

#: Editions still on their way: sending, or paused by an editor or a mass refusal.
UNDERWAY = (EditionStatus.sending, EditionStatus.paused)


def nothing_open() -> ColumnElement[bool]:
    """True for an edition with no delivery still to do (none at all counts as none open)."""
    return ~open_of(Edition.id)


def close_sent(
    session: Session, now: datetime, edition_ids: Collection[int] | None = None
) -> list[int]:
    """Mark as sent each edition underway (of ``edition_ids``, or all) whose deliveries are
    all final, in one conditional UPDATE; their ids. Never commits."""
    statement = update(Edition).where(Edition.status.in_(UNDERWAY), nothing_open())
    if edition_ids is not None:
        if not edition_ids:
            return []
        statement = statement.where(Edition.id.in_(sorted(edition_ids)))
    closed = session.scalars(
        statement.values(status=EditionStatus.sent, finished_at=now)
        .returning(Edition.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(closed)
