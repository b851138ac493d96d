"""The admin's side of the sending limits (``tidings limits``): set a relay's or a domain's
caps, clear them, and see every limit with what slow-downs made of it. Services: each owns
its transaction. What the limits mean is in :mod:`tidings.deliver.limits`."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select

from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import SendLimit, SendLimitSlot
from tidings.deliver.dbclock import db_time
from tidings.deliver.limitkeys import Key, key_for, limit_where, slots_where
from tidings.deliver.limits import MAX_PER_SECOND
from tidings.errors import InvalidInput

#: The most concurrent connections the admin may allow.
MAX_CONNECTIONS = 1_000
#: The slowest rate an admin may set: one message in about 17 minutes.
MIN_PER_SECOND = 0.001


@dataclass(frozen=True)
class LimitView:
    """One limit as ``tidings limits show`` presents it."""

    scope: str
    name: str
    per_second: float | None
    max_connections: int | None
    rate: float | None
    slowed_at: datetime | None
    slow_downs: int
    last_reply: str | None
    slots_held: int


def set_limit(
    db: Database, scope: str, name: str, per_second: float | None, connections: int | None
) -> LimitView:
    """Set a relay's or a domain's cap (rate and/or connections; what is not given stays).
    The rate in force becomes the new cap unless a slow-down holds it lower."""
    key = key_for(scope, name)
    if per_second is None and connections is None:
        raise InvalidInput("give --per-second and/or --connections")
    if per_second is not None and not MIN_PER_SECOND <= per_second <= MAX_PER_SECOND:
        raise InvalidInput(
            f"--per-second must be from {MIN_PER_SECOND:g} to {MAX_PER_SECOND:g} (above 0)"
        )
    if connections is not None and not 0 < connections <= MAX_CONNECTIONS:
        raise InvalidInput(f"--connections must be from 1 to {MAX_CONNECTIONS}")
    with db.session() as session:
        now = db_time(session)
        row = session.get(SendLimit, (key.scope.value, key.name))
        if row is None:
            row = SendLimit(scope=key.scope.value, name=key.name, slow_downs=0)
            session.add(row)
        if per_second is not None:
            # The admin's word is the rate now, unless a slow-down holds it lower (then the
            # climb brings it up to the new cap); the clock the old rate left far ahead is
            # pulled back to what the new rate allows.
            slowed = row.slowed_at is not None and row.rate is not None
            row.per_second = per_second
            row.rate = min(row.rate, per_second) if slowed and row.rate else per_second
            soonest = now.timestamp() + 1 / row.rate
            row.clock = None if row.clock is None else min(row.clock, soonest)
        if connections is not None:
            row.max_connections = connections
        row.updated_at = now
        session.commit()
    return _views(db, key)[0]


def clear_limit(db: Database, scope: str, name: str) -> bool:
    """Remove a limit and its slots; False if there was none."""
    key = key_for(scope, name)
    with db.session() as session:
        session.execute(delete(SendLimitSlot).where(slots_where(key)))
        gone = row_count(session.execute(delete(SendLimit).where(limit_where(key))))
        session.commit()
    return gone > 0


def limits_overview(db: Database) -> list[LimitView]:
    """Every limit, relays first, with its slots held now."""
    return _views(db, None)


def _views(db: Database, key: Key | None) -> list[LimitView]:
    """The limits (``key``'s alone, when given), with their slots held now."""
    with db.session() as session:
        held = (
            select(func.count())
            .where(
                SendLimitSlot.scope == SendLimit.scope,
                SendLimitSlot.name == SendLimit.name,
                SendLimitSlot.expires_at > db_time(session),
            )
            .scalar_subquery()
        )
        query = select(SendLimit, held).order_by(SendLimit.scope.desc(), SendLimit.name)
        if key is not None:
            query = query.where(limit_where(key))
        return [_view(row, int(slots)) for row, slots in session.execute(query).all()]


def _view(row: SendLimit, slots: int) -> LimitView:
    return LimitView(
        scope=row.scope,
        name=row.name,
        per_second=row.per_second,
        max_connections=row.max_connections,
        rate=row.rate,
        slowed_at=row.slowed_at,
        slow_downs=row.slow_downs,
        last_reply=row.last_reply,
        slots_held=slots,
    )
