"""Readers' zones of a reader-time newsletter: which zones its readers are in, and which
readers an edition for one zone goes to.

A reader's effective zone is their own time zone when it is a valid IANA zone, else the
newsletter's. One DISTINCT query gives the zones of the active readers; the split into valid
and invalid names is done here in Python (zoneinfo is the judge), and the fan-out gets one
set-based clause per zone, never a loop over readers.
"""

from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from tidings.db.clauses import is_suppressed
from tidings.db.engine import Database
from tidings.db.models import (
    Cadence,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)


@lru_cache(maxsize=1024)
def is_zone(name: str) -> bool:
    """True for a name zoneinfo knows (``Asia/Kolkata``); False for empty, unknown or unsafe
    names (a path, a directory such as ``America``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@dataclass(frozen=True)
class ReaderZones:
    """The time zones the active readers of a newsletter gave, split by validity.

    ``home`` is the newsletter's zone: readers with no zone or an invalid one read there.
    """

    home: str
    valid: frozenset[str]
    invalid: tuple[str, ...]

    def served(self) -> list[str]:
        """Every effective zone of a reader, by name, after the newsletter's own, which is
        always served: its edition is the one the public archive lists, readers there or not."""
        return [self.home, *sorted(self.valid - {self.home})]

    def rule(self, zone: str) -> ColumnElement[bool]:
        """The readers whose effective zone is ``zone`` (a clause on Subscriber)."""
        if zone == self.home:
            return or_(
                Subscriber.timezone.is_(None),
                Subscriber.timezone.in_([*self.invalid, zone]),
            )
        return Subscriber.timezone == zone


def reader_zones(
    session: Session, newsletter: Newsletter, cadence: Cadence | None = None
) -> ReaderZones:
    """The zones of the newsletter's active, unsuppressed readers (of ``cadence`` when the
    newsletter splits its readers by cadence), in one DISTINCT query."""
    query = (
        select(Subscriber.timezone)
        .distinct()
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.newsletter_id == newsletter.id,
            Subscription.status == SubscriptionStatus.active,
            ~is_suppressed(Subscriber.email),
        )
    )
    if cadence is not None and newsletter.offers_weekly:
        query = query.where(Subscription.cadence == cadence)
    names = list(session.scalars(query))
    valid = frozenset(n for n in names if n is not None and is_zone(n))
    invalid = tuple(sorted(n for n in names if n is not None and n not in valid))
    return ReaderZones(newsletter.timezone, valid, invalid)


def zone_rule(
    session: Session, newsletter: Newsletter, zone: str, cadence: Cadence | None = None
) -> ColumnElement[bool] | None:
    """The fan-out's clause for an edition of ``zone`` ("" for an edition of every reader:
    None, no clause)."""
    if not zone:
        return None
    return reader_zones(session, newsletter, cadence).rule(zone)


def served_zones(db: Database, newsletter_id: int, cadence: Cadence) -> list[str] | None:
    """The effective zones of a reader-time newsletter's readers of ``cadence``, or None
    when the newsletter sends at one time for all (not reader-time)."""
    with db.session() as session:
        newsletter = session.get_one(Newsletter, newsletter_id)
        if not newsletter.reader_time:
            return None
        return reader_zones(session, newsletter, cadence).served()


def reader_time_ids(db: Database) -> set[int]:
    """The ids of the newsletters that send at each reader's own time."""
    with db.session() as session:
        return set(session.scalars(select(Newsletter.id).where(Newsletter.reader_time)))
