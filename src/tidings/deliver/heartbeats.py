"""Worker heartbeats: every worker process says, on a timer of its own, where it runs, since
when, how fast it sends and how much it holds; it takes its row away when it stops cleanly.

A beat older than :data:`STALE_BEATS` beat intervals is a worker that died (or hangs, or
lost the database): it does not count as alive. A beat is stamped, and judged, with the
database's time (:mod:`~tidings.deliver.dbclock`), never a host's: a worker whose clock is
minutes off is still seen alive while it beats, and dead once it stops, by every reader.
"""

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tidings.db.dialect import row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import WorkerHeartbeat
from tidings.deliver.dbclock import db_time
from tidings.deliver.ledger import anything_due
from tidings.deliver.limitslots import release_holder, renew_slots
from tidings.metrics import HEARTBEAT_TIME

log = logging.getLogger(__name__)

#: How often a worker beats: often enough that a health check notices a dead worker within
#: a quarter of a minute, rarely enough to be nothing beside the sending.
BEAT_SECONDS = 5.0
#: A worker whose last beat is older than this many intervals counts as dead.
STALE_BEATS = 3
#: The row of a worker that died without a clean stop is kept this long (the console shows
#: it as silent), then a starting worker deletes it.
KEEP_SILENT = timedelta(days=1)


@dataclass(frozen=True)
class Heartbeat:
    """One worker process, as its last beat described it."""

    name: str
    host: str
    pid: int
    started_at: datetime
    last_beat_at: datetime
    #: Messages finished per second over the last few seconds.
    per_second: float
    #: Deliveries claimed and not finished yet.
    in_flight: int


def stale_after(every: float = BEAT_SECONDS) -> timedelta:
    """How old a last beat may be for its worker to count as alive."""
    return timedelta(seconds=every * STALE_BEATS)


def beat(db: Database, heartbeat: Heartbeat, every: float = BEAT_SECONDS) -> None:
    """Write a beat stamped with its own ``last_beat_at`` (a time of the database's clock,
    given by a test or a tool); a worker beats with :func:`beat_now`."""
    with db.session() as session:
        _write_beat(session, heartbeat, every)
        session.commit()


def beat_now(
    db: Database, heartbeat_at: Callable[[datetime], Heartbeat], every: float = BEAT_SECONDS
) -> Heartbeat:
    """Write the beat ``heartbeat_at`` makes for the database's time, read in the same
    transaction; the beat written."""
    with db.session() as session:
        heartbeat = heartbeat_at(db_time(session))
        _write_beat(session, heartbeat, every)
        session.commit()
        return heartbeat


def _write_beat(session: Session, heartbeat: Heartbeat, every: float) -> None:
    """One UPSERT of the worker's row, and its relay connection slots renewed for as long as
    the beat keeps it alive."""
    values = {
        "name": heartbeat.name,
        "host": heartbeat.host,
        "pid": heartbeat.pid,
        "started_at": heartbeat.started_at,
        "last_beat_at": heartbeat.last_beat_at,
        "per_second": heartbeat.per_second,
        "in_flight": heartbeat.in_flight,
    }
    insert = upsert_insert(session)(WorkerHeartbeat).values(**values)
    changing = ("last_beat_at", "per_second", "in_flight")
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[WorkerHeartbeat.name],
            set_={column: insert.excluded[column] for column in changing},
        )
    )
    renew_slots(session, heartbeat.name, stale_after(every))  # on the database's clock


def forget(db: Database, name: str) -> None:
    """Take a worker's row away, and give back its connection slots (it stopped cleanly)."""
    with db.session() as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))
        release_holder(session, name)
        session.commit()


def forget_silent(db: Database, now: datetime | None = None) -> int:
    """Delete the rows of workers silent for longer than :data:`KEEP_SILENT` (they died
    without a clean stop) at ``now`` (the database's time unless given); how many."""
    with db.session() as session:
        before = db_time(session, now) - KEEP_SILENT
        gone = row_count(
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_beat_at < before))
        )
        session.commit()
        return gone


def _heartbeats(session: Session, since: datetime) -> list[Heartbeat]:
    """The workers whose last beat is at or after ``since``, oldest first."""
    rows = session.scalars(
        select(WorkerHeartbeat)
        .where(WorkerHeartbeat.last_beat_at >= since)
        .order_by(WorkerHeartbeat.started_at, WorkerHeartbeat.name)
    )
    return [
        Heartbeat(
            name=row.name,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            last_beat_at=row.last_beat_at,
            per_second=row.per_second,
            in_flight=row.in_flight,
        )
        for row in rows
    ]


def alive(db: Database, now: datetime | None = None) -> list[Heartbeat]:
    """The workers whose last beat is fresh at ``now`` (the database's time unless given),
    oldest first."""
    with db.session() as session:
        return _heartbeats(session, db_time(session, now) - stale_after())


def sending_is_due(db: Database, now: datetime | None = None) -> bool:
    """Whether some delivery of a sending edition waits for a worker at ``now`` (the
    database's time unless given): queued, or deferred with its retry time come."""
    with db.session() as session:
        return _is_due(session, db_time(session, now))


def _is_due(session: Session, now: datetime) -> bool:
    return session.scalar(select(anything_due(now))) is True


@dataclass(frozen=True)
class RollCall:
    """Who is sending: the live workers, those gone silent (within :data:`KEEP_SILENT`),
    and whether deliveries are due."""

    alive: list[Heartbeat]
    silent: list[Heartbeat]
    due: bool
    #: The time they were judged at (the database's, unless the caller gave one): what a
    #: page showing how long ago each beat was should count from.
    now: datetime

    @property
    def unattended(self) -> bool:
        """Deliveries are due and no worker is alive to send them."""
        return self.due and not self.alive


def roll_call(db: Database, now: datetime | None = None) -> RollCall:
    """The workers, live and silent, and whether sending is due at ``now`` (the database's
    time unless given): for the health check, the console and ``digest send``."""
    with db.session() as session:
        now = db_time(session, now)
        fresh_since = now - stale_after()
        found = _heartbeats(session, now - KEEP_SILENT)
        return RollCall(
            alive=[h for h in found if h.last_beat_at >= fresh_since],
            silent=[h for h in found if h.last_beat_at < fresh_since],
            due=_is_due(session, now),
            now=now,
        )


@dataclass(frozen=True)
class Measure:
    """What a worker reports in each beat: its send rate and what it holds."""

    per_second: float
    in_flight: int


class Beater:
    """A worker's heartbeat: beats every ``every`` seconds until cancelled, beside (never
    behind) the worker's claims and writes; a failed beat is logged and the next one tries
    again. :meth:`forget` takes the row away on a clean stop."""

    def __init__(
        self,
        db: Database,
        name: str,
        measure: Callable[[], Measure],
        every: float = BEAT_SECONDS,
    ) -> None:
        self.db = db
        self.name = name
        self.every = every
        self._measure = measure
        #: When it started, on the database's clock: the time of its first beat.
        self.started_at: datetime | None = None
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()

    def heartbeat(self, measured: Measure, now: datetime) -> Heartbeat:
        """This worker's beat at ``now``, the database's time."""
        if self.started_at is None:
            self.started_at = now
        return Heartbeat(
            name=self.name,
            host=self.host,
            pid=self.pid,
            started_at=self.started_at,
            last_beat_at=now,
            per_second=round(measured.per_second, 3),
            in_flight=measured.in_flight,
        )

    async def beat_once(self) -> bool:
        """One beat, on the database's clock; False (logged) if the database did not take
        it."""
        try:
            # Measured here, in the event loop that owns what it counts; stamped in the beat.
            stamp = partial(self.heartbeat, self._measure())
            written = await asyncio.to_thread(beat_now, self.db, stamp, self.every)
        except Exception as exc:  # never fatal: the worker's sending matters more
            log.warning(
                "cannot write the worker's heartbeat (%s); trying again", type(exc).__name__
            )
            return False
        HEARTBEAT_TIME.set(written.last_beat_at.timestamp())
        return True

    async def run(self) -> None:
        """Clear away long-dead workers' rows, then beat at once and every ``every``
        seconds, until cancelled."""
        try:
            await asyncio.to_thread(forget_silent, self.db)
        except Exception as exc:  # housekeeping: the next worker to start tries again
            log.warning("cannot clear silent workers' heartbeats (%s)", type(exc).__name__)
        while True:
            await self.beat_once()
            await asyncio.sleep(self.every)

    async def forget(self) -> None:
        """Take this worker's row away; a failure is logged (the row goes stale anyway)."""
        try:
            await asyncio.to_thread(forget, self.db, self.name)
        except Exception as exc:
            log.warning("cannot remove the worker's heartbeat (%s)", type(exc).__name__)
