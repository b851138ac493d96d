"""The one clock of everything workers on many hosts share through the database: the
database's own. Delivery leases (claimed, renewed, judged expired), worker heartbeats
(written, judged alive) and the shared sending limits (rates, connection slots) are stamped
and judged with it, never with a worker's clock, so a host whose clock is minutes off
neither takes back another worker's live lease (the message would be sent twice), nor
looks dead (or alive for ever), nor pushes a shared rate's clock ahead for every host.

On PostgreSQL it is ``now()`` (the transaction's start); on SQLite, which only one host
uses, this host's clock. A function of the ledger, the heartbeats or the limits that takes a
``now`` reads this clock when given none; a given ``now`` stands for the database's time
(tests).

Between its reads, a worker tells the database's time with a :class:`DbClock`: how far the
database's clock was from its host's at the last read, added to its host's clock (the send
pool stamps results and due times with it)."""

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Float, bindparam, cast, extract, func, select, type_coerce
from sqlalchemy.orm import Session

from tidings.db.dialect import is_postgres
from tidings.db.types import UTCDateTime, as_utc, utcnow

#: The Julian day of 1970-01-01 (SQLite's julianday() to Unix seconds).
_UNIX_EPOCH_JD = 2440587.5


def db_time(session: Session, given: datetime | None = None) -> datetime:
    """The database's time (PostgreSQL's transaction time, one SELECT); on SQLite, which
    only one host uses, this host's clock. A time ``given`` (a caller's, or a test's) is
    used as it is, with no SELECT: the one rule for every function taking an optional now."""
    if given is not None:
        return given
    if is_postgres(session):
        found = session.scalar(select(func.now()))
        if found is not None:
            return as_utc(found)
    return utcnow()


def db_time_column(session: Session) -> ColumnElement[datetime]:
    """:func:`db_time` as a column to select beside others (no round trip of its own)."""
    if is_postgres(session):
        return type_coerce(func.now(), UTCDateTime)
    return bindparam("db_time", utcnow(), type_=UTCDateTime)


def db_seconds(session: Session) -> ColumnElement[float]:
    """The database's time in Unix seconds, inside a statement (no round trip of its own)."""
    if is_postgres(session):
        return cast(extract("epoch", func.now()), Float)
    return (func.julianday("now") - _UNIX_EPOCH_JD) * 86_400.0


class DbClock:
    """The database's time as seen from this host: its host's clock plus the offset the
    last :meth:`observe` found (none before the first). One per worker, fed by its reads of
    :func:`db_time`."""

    def __init__(self, host: Callable[[], datetime] = utcnow) -> None:
        self._host = host
        self.offset = timedelta(0)

    def observe(self, db_now: datetime) -> datetime:
        """Learn the offset from ``db_now``, the database's time just read; returns it.
        (The host's clock is read after it, so the times told are early by at most that
        read's round trip, never by the host's own error.)"""
        self.offset = db_now - self._host()
        return db_now

    def now(self) -> datetime:
        """The database's time now, as last learnt."""
        return self._host() + self.offset

    def of_host(self, at: datetime) -> datetime:
        """A time on this host's clock (a send time the pacer set, say) on the database's."""
        return at + self.offset
