"""SQL pieces more than one package asks for, written once: whether an address is
suppressed, the way out of a subscription, and one keyset page of a query."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, TypeVarTuple

from sqlalchemy import ColumnElement, Exists, Row, Select, Update, and_, exists, or_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from tidings.db.models import (
    PUBLIC_EDITION_STATES,
    Edition,
    Newsletter,
    Subscription,
    SubscriptionStatus,
    Suppression,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def is_suppressed(email: ColumnElement[str] | InstrumentedAttribute[str]) -> Exists:
    """True for an address on the suppression list (the one rule every sender obeys)."""
    return exists().where(Suppression.email == email)


def listed_publicly() -> ColumnElement[bool]:
    """The editions the archive lists and counts (the query joins Newsletter): public ones,
    and of a reader-time newsletter's one edition per slot, its own zone's (the others carry
    the same news at other hours; each stays readable at its own address)."""
    return and_(
        Edition.status.in_(PUBLIC_EDITION_STATES),
        or_(Edition.zone == "", Edition.zone == Newsletter.timezone),
    )


def leave(now: datetime, *which: ColumnElement[bool]) -> Update:
    """The one statement behind every way out (the link, the preference centre, bulk actions,
    a mailto unsubscribe, a complaint): the subscriptions matching ``which`` that are still
    subscribed (active or pending) end now. Callers count it or add a RETURNING."""
    return (
        update(Subscription)
        .where(*which, Subscription.status != SubscriptionStatus.unsubscribed)
        .values(status=SubscriptionStatus.unsubscribed, unsubscribed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class KeysetPage(Generic[T]):
    """One page of rows in key order, and the key to start the next page after (None on
    the last page)."""

    rows: Sequence[T]
    next_after: int | None


def keyset_page(
    session: Session,
    statement: Select[*Ts],
    key: InstrumentedAttribute[int] | ColumnElement[Any],
    after: int,
    size: int,
) -> KeysetPage[Row[*Ts]]:
    """The first ``size`` rows of ``statement`` whose ``key`` is above ``after``; the key must
    be among the selected columns. One row more is read to learn whether a next page exists."""
    rows = session.execute(statement.where(key > after).order_by(key).limit(size + 1)).all()
    page = rows[:size]
    more = len(rows) > size
    return KeysetPage(page, int(page[-1]._mapping[key]) if more else None)
