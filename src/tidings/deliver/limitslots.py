"""A relay's or a domain's connection limit held as leased slots (``send_limit_slots``, one
row per connection in use), on the database's clock (see :mod:`tidings.deliver.limits`).
Query helpers: they take a session and never commit."""

from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    ScalarSelect,
    Select,
    String,
    and_,
    delete,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
    union,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from tidings.db.dialect import is_postgres, row_count, upsert_insert
from tidings.db.models import SendLimit, SendLimitSlot
from tidings.db.types import UTCDateTime
from tidings.deliver.dbclock import db_time, db_time_column
from tidings.deliver.limitadmin import MAX_CONNECTIONS
from tidings.deliver.limitkeys import Key, limit_where, slots_where


def take_slot(
    session: Session, key: Key, holder: str, lease: timedelta, now: datetime | None = None
) -> int | None:
    """Take one of ``key``'s connection slots for ``holder``: the lowest free one, or one
    whose lease ran out (its holder died); None when all are held (or ``key`` has no such
    limit). One statement (:func:`_take`) when a slot is free; when it takes none, a second
    asks whether that was a race lost to another taker (on PostgreSQL two takers can pick the
    same free number at once: the loser's ON CONFLICT finds a live lease) and, if a slot is
    still free, it tries again (each lost race is a slot someone else took)."""
    at, expires_at = _lease_times(session, lease, now)
    for _ in range(MAX_CONNECTIONS):  # a bound: each lost race is a slot taken meanwhile
        taken = session.execute(_take(session, key, holder, at, expires_at)).first()
        if taken is not None:
            return int(taken.slot)
        if not session.scalar(_has_free_slot(key, at)):
            break
    return None


def _lease_times(
    session: Session, lease: timedelta, now: datetime | None
) -> tuple[ColumnElement[datetime], ColumnElement[datetime]]:
    """Now and the new lease's end, as SQL: on PostgreSQL ``now()`` inside the statement
    (no round trip of its own), unless a time is given."""
    if now is None and is_postgres(session):
        at = db_time_column(session)
        return at, type_coerce(at + literal(lease, Interval), UTCDateTime)
    start = db_time(session, now)
    return literal(start, UTCDateTime), literal(start + lease, UTCDateTime)


def _live(key: Key, at: ColumnElement[datetime]) -> ColumnElement[bool]:
    """``key``'s slots whose lease is still running at ``at``."""
    return and_(slots_where(key), SendLimitSlot.expires_at > at)


def _take(
    session: Session,
    key: Key,
    holder: str,
    at: ColumnElement[datetime],
    expires_at: ColumnElement[datetime],
) -> ReturningInsert[int]:
    """INSERT the lowest slot number below the limit that no live lease holds (0 or one
    past a held number: the lowest free one is among those, so no series of numbers is
    needed), or take over its row when the lease there ran out by ``at``; RETURNING gives
    the number only when this statement got it. Nothing is taken while as many live leases
    as the limit allows are held, whatever their numbers (a limit lowered under them)."""
    candidates = union(
        select(literal_column("0", Integer).label("slot")),
        select((SendLimitSlot.slot + 1).label("slot")).where(_live(key, at)),
    ).subquery("candidates")
    lowest_free = (
        select(
            literal(key.scope.value, String),
            literal(key.name, String),
            candidates.c.slot,
            literal(holder, String),
            expires_at,
        )
        .join_from(candidates, SendLimit, limit_where(key))
        .where(
            candidates.c.slot < SendLimit.max_connections,
            _held(key, at) < SendLimit.max_connections,
            candidates.c.slot.not_in(select(SendLimitSlot.slot).where(_live(key, at))),
        )
        .order_by(candidates.c.slot)
        .limit(1)
    )
    insert = upsert_insert(session)(SendLimitSlot).from_select(
        ["scope", "name", "slot", "holder", "expires_at"], lowest_free
    )
    return insert.on_conflict_do_update(
        index_elements=[SendLimitSlot.scope, SendLimitSlot.name, SendLimitSlot.slot],
        set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at},
        where=SendLimitSlot.expires_at <= at,
    ).returning(SendLimitSlot.slot)


def _held(key: Key, at: ColumnElement[datetime]) -> ScalarSelect[int]:
    """How many of ``key``'s slots live leases hold at ``at``, whatever their numbers: a
    slot numbered past a lowered limit still holds a connection until it is given back."""
    return select(func.count()).select_from(SendLimitSlot).where(_live(key, at)).scalar_subquery()


def _has_free_slot(key: Key, at: ColumnElement[datetime]) -> Select[bool]:
    """Whether ``key`` has a connection limit that fewer live leases than it hold at ``at``."""
    return select(SendLimit.max_connections > _held(key, at)).where(limit_where(key))


def release_slot(session: Session, key: Key, slot: int, holder: str) -> None:
    """Give a slot back (only if ``holder`` still holds it)."""
    session.execute(
        delete(SendLimitSlot).where(
            slots_where(key), SendLimitSlot.slot == slot, SendLimitSlot.holder == holder
        )
    )


def renew_slots(
    session: Session, holder: str, lease: timedelta, now: datetime | None = None
) -> int:
    """Extend every slot ``holder`` holds to ``lease`` from now (with its heartbeat); how
    many."""
    expires_at = db_time(session, now) + lease
    return row_count(
        session.execute(
            update(SendLimitSlot)
            .where(SendLimitSlot.holder == holder)
            .values(expires_at=expires_at)
            .execution_options(synchronize_session=False)
        )
    )


def release_holder(session: Session, holder: str) -> int:
    """Give back every slot ``holder`` holds (a clean stop); how many."""
    return row_count(session.execute(delete(SendLimitSlot).where(SendLimitSlot.holder == holder)))
