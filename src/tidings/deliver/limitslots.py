"""A relay's or a domain's connection limit held as leased slots (``send_limit_slots``, one
row per connection in use), on the database's clock (see :mod:`tidings.deliver.limits`).
Query helpers: they take a session and never commit."""

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tidings.db.dialect import row_count, upsert_insert
from tidings.db.models import SendLimit, SendLimitSlot
from tidings.deliver.limitclock import db_time, db_time_column
from tidings.deliver.limitkeys import Key, limit_where, slots_where


def take_slot(
    session: Session, key: Key, holder: str, lease: timedelta, now: datetime | None = None
) -> int | None:
    """Take one of ``key``'s connection slots for ``holder``: a free one, or one whose lease
    ran out (its holder died); None when all are held (or ``key`` has no such limit).
    Each try is one INSERT ... ON CONFLICT DO UPDATE fenced by the old lease's expiry, so
    two workers never get the same slot (leases on the database's clock)."""
    found = session.execute(
        select(SendLimit.max_connections, db_time_column(session)).where(limit_where(key))
    ).one_or_none()
    if found is None or found[0] is None:
        return None
    most, now = found[0], found[1] if now is None else now
    rows = session.execute(
        select(SendLimitSlot.slot, SendLimitSlot.expires_at).where(slots_where(key))
    ).all()
    held = {slot for slot, expires_at in rows if expires_at > now}
    for slot in range(most):
        if slot in held:
            continue
        insert = upsert_insert(session)(SendLimitSlot).values(
            scope=key.scope.value, name=key.name, slot=slot, holder=holder, expires_at=now + lease
        )
        taken = session.execute(
            insert.on_conflict_do_update(
                index_elements=[SendLimitSlot.scope, SendLimitSlot.name, SendLimitSlot.slot],
                set_={"holder": holder, "expires_at": now + lease},
                where=SendLimitSlot.expires_at <= now,
            ).returning(SendLimitSlot.slot)  # a row only when inserted or taken over
        ).first()
        if taken is not None:
            return slot
    return None


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
    expires_at = (db_time(session) if now is None else now) + lease
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
