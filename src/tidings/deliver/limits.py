"""Sending limits kept in the database, so that they hold for every worker on every host.

A limit is a row of ``send_limits`` for one relay ("host:port") or one receiving domain:

- its rate is a shared virtual clock (GCRA): :func:`reserve` moves ``clock`` on by k / rate
  in one conditional UPDATE and returns the reserved times, so workers share one rate with
  no lock held while they send, and never reserve more than ``ahead`` seconds in advance;
- its connections are leased slots (``send_limit_slots``, one row per open connection):
  :func:`take_slot` takes a free or expired one, the worker's heartbeat renews them
  (:func:`renew_slots`), a clean stop deletes them (:func:`release_holder`);
- a "slow down" reply (:func:`slow_down`) halves the rate (at most once per
  :data:`SLOW_DOWN_SPACING`, since the replies to messages already in flight are one
  signal), never below :data:`FLOOR_PER_SECOND`; :func:`climb` raises it back by a tenth
  per quiet minute, up to ``per_second``, and forgets a learnt row (no cap of the admin's)
  once it has been quiet for :data:`FORGET_AFTER`.

Every time these shared rows hold is the database's (:mod:`~tidings.deliver.dbclock`),
never a worker's: a host whose clock is minutes off must neither push the shared clock ahead
for everyone nor see live slots as expired. A ``now`` given here stands for the database's
time (tests). The slots' helpers live in :mod:`~tidings.deliver.limitslots`, the admin's
services (which own their transaction) in :mod:`~tidings.deliver.limitadmin`.

These are query helpers: they take a session and never commit.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from tidings.db.dialect import row_count, upsert_insert
from tidings.db.models import SendLimit, SendLimitScope
from tidings.deliver.dbclock import db_seconds, db_time
from tidings.deliver.limitkeys import Key, limit_where

#: A slow-down multiplies the rate by this.
SLOW_DOWN_FACTOR = 0.5
#: The rate a slow-down never goes below (messages per second), unless the admin's cap is
#: lower: a receiver that asks us to slow down still takes a message a second.
FLOOR_PER_SECOND = 1.0
#: Replies within this long of the slow-down that lowered the rate are the same signal (the
#: messages that were in flight then): they are recorded but lower it no further.
SLOW_DOWN_SPACING = timedelta(seconds=5)
#: Each quiet minute raises the rate by this factor.
CLIMB_FACTOR = 1.1
QUIET_STEP = timedelta(minutes=1)
#: A row learnt from slow-downs alone (no cap set by the admin) is deleted after this long
#: without one: the receiver is back to normal.
FORGET_AFTER = timedelta(hours=1)
#: At most this many domains are learnt from slow-downs alone (each worker reads every
#: limit every few seconds); past it, a domain's slow-down slows the relay.
MAX_LEARNT_DOMAINS = 1_000
#: The fastest rate there is (the admin may set no more; the climb stops there).
MAX_PER_SECOND = 100_000.0
#: At most this many sends per reservation. A clock further ahead than ``ahead`` plus this
#: many sends at the rate in force was left by an older, slower rate (a cap changed in the
#: table by hand): the next reservation starts from now.
MAX_RESERVE = 50


@dataclass(frozen=True)
class Reserved:
    """``count`` sends reserved at ``first``, ``first + 1/rate``, ... (Unix seconds, the
    database's clock; ``now`` is its time of the reservation, so a worker waits
    ``first - now`` whatever its own clock says)."""

    first: float
    count: int
    rate: float
    now: float

    def at(self, index: int) -> float:
        return self.first + index / self.rate


@dataclass(frozen=True)
class NotBefore:
    """The rate is spent: nothing can be reserved before ``at`` (Unix seconds, the
    database's clock, whose time then was ``now``)."""

    at: float
    now: float


def _learnt() -> ColumnElement[bool]:
    """A row learnt from slow-downs alone: the admin set no cap on it."""
    return and_(SendLimit.per_second.is_(None), SendLimit.max_connections.is_(None))


# -- the rate --------------------------------------------------------------------------


def printable(text: str) -> str:
    """A relay's reply as it may be stored and shown: control characters (NUL included)
    and undecodable bytes (surrogates) each become a "?"."""
    return "".join("?" if c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff" else c for c in text)


def reserve(
    session: Session, key: Key, count: int, ahead: float, now: float | None = None
) -> Reserved | NotBefore | None:
    """Reserve ``count`` (1 to :data:`MAX_RESERVE`) sends on ``key``'s shared clock, in one
    UPDATE: the first at the later of the clock and the database's now, each next one
    1/rate later; refused (:class:`NotBefore`) while the clock is more than ``ahead``
    seconds past now. None: no rate on ``key``."""
    if not 0 < count <= MAX_RESERVE:
        raise ValueError(f"reserve 1 to {MAX_RESERVE} sends, not {count}")
    k = bindparam("k", float(count), type_=Float)
    at = db_seconds(session) if now is None else bindparam("now", now, type_=Float)
    clock = SendLimit.clock
    stale = clock > at + ahead + MAX_RESERVE / SendLimit.rate  # left by an older, slower rate
    start = case((or_(clock.is_(None), clock < at, stale), at), else_=clock)
    row = session.execute(
        update(SendLimit)
        .where(
            limit_where(key),
            SendLimit.rate.is_not(None),
            or_(clock.is_(None), clock <= at + ahead, stale),
        )
        .values(clock=start + k / SendLimit.rate)
        .returning(SendLimit.clock, SendLimit.rate, at)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is not None:
        then = float(row[2])
        moved, rate = float(row[0] or then), float(row[1] or 1.0)  # both set by the UPDATE
        return Reserved(moved - count / rate, count, rate, then)
    found = session.execute(
        select(SendLimit.clock, SendLimit.rate, at).where(limit_where(key))
    ).one_or_none()
    if found is None or found[1] is None:
        return None
    then = float(found[2])
    return NotBefore(float(found[0] or then) - ahead, then)


def slow_down(
    session: Session, key: Key, reply: str, measured: float, now: datetime | None = None
) -> float | None:
    """A "slow down" reply for ``key``: halve its rate (a row without one starts from half
    the ``measured`` rate, messages per second), at most once per :data:`SLOW_DOWN_SPACING`,
    never below the floor; record it either way. Returns the rate now in force; None
    when ``key`` is a domain with no row while :data:`MAX_LEARNT_DOMAINS` are learnt (a
    relay that slows every domain: the caller slows the relay instead)."""
    if key.scope == SendLimitScope.domain and _too_many_learnt(session, key):
        return None
    now = db_time(session, now)
    insert = upsert_insert(session)(SendLimit)
    session.execute(
        insert.values(
            scope=key.scope.value, name=key.name, slow_downs=0, updated_at=now
        ).on_conflict_do_nothing(index_elements=[SendLimit.scope, SendLimit.name])
    )
    floor = case(
        (SendLimit.per_second < FLOOR_PER_SECOND, SendLimit.per_second), else_=FLOOR_PER_SECOND
    )
    base = func.coalesce(SendLimit.rate, SendLimit.per_second, measured)
    halved = base * SLOW_DOWN_FACTOR
    due = or_(SendLimit.slowed_at.is_(None), SendLimit.slowed_at <= now - SLOW_DOWN_SPACING)
    lowered = case((halved < floor, floor), else_=halved)
    session.execute(
        update(SendLimit)
        .where(limit_where(key))
        .values(
            rate=case((due, lowered), else_=func.coalesce(SendLimit.rate, lowered)),
            slowed_at=case((due, now), else_=SendLimit.slowed_at),
            raised_at=None,
            slow_downs=SendLimit.slow_downs + 1,
            last_reply=printable(reply)[:512],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return session.scalar(select(SendLimit.rate).where(limit_where(key)))


def _too_many_learnt(session: Session, key: Key) -> bool:
    """``key`` has no row and the domains learnt from slow-downs alone are at the bound."""
    if session.scalar(select(SendLimit.name).where(limit_where(key))) is not None:
        return False
    learnt = select(func.count()).where(SendLimit.scope == SendLimitScope.domain.value, _learnt())
    return (session.scalar(learnt) or 0) >= MAX_LEARNT_DOMAINS


def climb(session: Session, now: datetime | None = None) -> int:
    """Raise every slowed rate that has had a quiet minute by :data:`CLIMB_FACTOR`, up to
    its cap (one step per minute however many workers ask: the step is fenced by
    ``raised_at``); delete learnt rows quiet for :data:`FORGET_AFTER`. How many changed."""
    now = db_time(session, now)
    quiet = now - QUIET_STEP
    raised = SendLimit.rate * CLIMB_FACTOR
    cap = func.coalesce(SendLimit.per_second, MAX_PER_SECOND)
    # Compared before it is multiplied: a rate near the float limit must not overflow.
    capped = case((SendLimit.rate >= cap / CLIMB_FACTOR, cap), else_=raised)
    # A learnt rate beside an admin's connection limit: after a quiet hour the rate goes
    # (the row stays for its connections).
    learnt_out = and_(
        SendLimit.per_second.is_(None),
        SendLimit.max_connections.is_not(None),
        SendLimit.slowed_at <= now - FORGET_AFTER,
    )
    changed = row_count(
        session.execute(
            update(SendLimit)
            .where(
                SendLimit.rate.is_not(None),
                SendLimit.slowed_at <= quiet,
                or_(SendLimit.raised_at.is_(None), SendLimit.raised_at <= quiet),
                SendLimit.rate != cap,  # (one above it, set by hand, comes down to it)
            )
            .values(
                rate=case((learnt_out, None), else_=capped),
                clock=case((learnt_out, None), else_=SendLimit.clock),
                raised_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    )
    forgotten = row_count(
        session.execute(
            delete(SendLimit).where(_learnt(), SendLimit.slowed_at <= now - FORGET_AFTER)
        )
    )
    return changed + forgotten


@dataclass(frozen=True)
class Known:
    """The keys that have a rate, and the connection limits, as a worker last read them."""

    rated: frozenset[Key]
    connections: dict[Key, int]


def known_limits(session: Session) -> Known:
    """Every limit in force: those the admin set, and those learnt lately (at most
    :data:`MAX_LEARNT_DOMAINS` domains, so a few thousand small rows at worst)."""
    rows = session.execute(
        select(SendLimit.scope, SendLimit.name, SendLimit.rate, SendLimit.max_connections)
    ).all()
    rated = frozenset(Key(SendLimitScope(s), n) for s, n, rate, _ in rows if rate is not None)
    connections = {Key(SendLimitScope(s), n): m for s, n, _, m in rows if m is not None}
    return Known(rated, connections)
