"""Worker heartbeats: every worker process says, on a timer of its own, where it runs, since
when, how fast it sends and how much it holds; it takes its row away when it stops cleanly.

A beat older than :data:`STALE_BEATS` beat intervals is a worker that died (or hangs, or
lost the database): it does not count as alive. Hosts are expected to keep their clocks in
step (NTP): a beat is stamped with the worker's clock and judged by the reader's.
"""

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select

from tidings.db.dialect import row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, EditionStatus, WorkerHeartbeat
from tidings.db.types import utcnow
from tidings.deliver.ledger import DUE_STATES
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
    """Write this worker's beat: one UPSERT of its row, and renew the relay connection
    slots it holds for as long as the beat keeps it alive."""
    values = {
        "name": heartbeat.name,
        "host": heartbeat.host,
        "pid": heartbeat.pid,
        "started_at": heartbeat.started_at,
        "last_beat_at": heartbeat.last_beat_at,
        "per_second": heartbeat.per_second,
        "in_flight": heartbeat.in_flight,
    }
    with db.session() as session:
        insert = upsert_insert(session)(WorkerHeartbeat).values(**values)
        changing = ("last_beat_at", "per_second", "in_flight")
        session.execute(
            insert.on_conflict_do_update(
                index_elements=[WorkerHeartbeat.name],
                set_={column: insert.excluded[column] for column in changing},
            )
        )
        renew_slots(session, heartbeat.name, stale_after(every))  # on the database's clock
        session.commit()


def forget(db: Database, name: str) -> None:
    """Take a worker's row away, and give back its connection slots (it stopped cleanly)."""
    with db.session() as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))
        release_holder(session, name)
        session.commit()


def forget_silent(db: Database, now: datetime | None = None) -> int:
    """Delete the rows of workers silent for longer than :data:`KEEP_SILENT` (they died
    without a clean stop); how many."""
    before = (now or utcnow()) - KEEP_SILENT
    with db.session() as session:
        gone = row_count(
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_beat_at < before))
        )
        session.commit()
        return gone


def _heartbeats(db: Database, since: datetime) -> list[Heartbeat]:
    """The workers whose last beat is at or after ``since``, oldest first."""
    with db.session() as session:
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
    """The workers whose last beat is fresh, oldest first."""
    return _heartbeats(db, (now or utcnow()) - stale_after())


def sending_is_due(db: Database, now: datetime | None = None) -> bool:
    """Whether some delivery of a sending edition waits for a worker now (queued, or
    deferred with its retry time come)."""
    due = and_(
        Delivery.state.in_(DUE_STATES),
        Delivery.next_attempt_at <= (now or utcnow()),
        Edition.status == EditionStatus.sending,
    )
    with db.session() as session:
        query = select(Delivery.id).join(Edition, Edition.id == Delivery.edition_id).where(due)
        return session.scalar(query.limit(1)) is not None


@dataclass(frozen=True)
class RollCall:
    """Who is sending: the live workers, those gone silent (within :data:`KEEP_SILENT`),
    and whether deliveries are due."""

    alive: list[Heartbeat]
    silent: list[Heartbeat]
    due: bool

    @property
    def unattended(self) -> bool:
        """Deliveries are due and no worker is alive to send them."""
        return self.due and not self.alive


def roll_call(db: Database, now: datetime | None = None) -> RollCall:
    """The workers, live and silent, and whether sending is due: for the health check, the
    console and ``digest send``."""
    now = now or utcnow()
    fresh_since = now - stale_after()
    found = _heartbeats(db, now - KEEP_SILENT)
    return RollCall(
        alive=[h for h in found if h.last_beat_at >= fresh_since],
        silent=[h for h in found if h.last_beat_at < fresh_since],
        due=sending_is_due(db, now),
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
        self.started_at = utcnow()
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()

    def heartbeat(self, now: datetime) -> Heartbeat:
        measured = self._measure()
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
        """One beat; False (logged) if the database did not take it."""
        now = utcnow()
        try:
            await asyncio.to_thread(beat, self.db, self.heartbeat(now), self.every)
        except Exception as exc:  # never fatal: the worker's sending matters more
            log.warning(
                "cannot write the worker's heartbeat (%s); trying again", type(exc).__name__
            )
            return False
        HEARTBEAT_TIME.set(now.timestamp())
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
