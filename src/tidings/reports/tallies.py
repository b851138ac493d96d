"""Editions' delivery counts kept a little while per process, so that many viewers polling
an edition every second cost the database a bounded share of its time, whatever their number.

A live edition with at least :data:`KEPT_FROM` deliveries keeps its counts for
:data:`KEPT_FACTOR` times what counting took (at least :data:`MIN_KEPT`, at most
:data:`MAX_KEPT` seconds), and no longer than its status: a pause, resume or cancel is
counted afresh. Smaller editions are counted at every call (a few milliseconds). An edition
is counted by one viewer at a time: the others wait for that count (never for another
edition's), then use it. A finished edition's last send never changes (its counts are
stored, nothing of it is open): it is kept, at most :data:`KEPT_FINISHED` of them.
"""

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus

#: A live edition with at least this many deliveries has its counts kept a little while
#: (counting it reads all its rows, a tenth of a second at 300,000); smaller ones are
#: counted at every call.
KEPT_FROM = 10_000
#: Kept counts are taken again after this many times what counting them took ...
KEPT_FACTOR = 10
#: ... and at least this many seconds (an edition page polls once a second) ...
MIN_KEPT = 1.0
#: ... and at most this many (a count slowed down by a busy database keeps no old figures
#: for minutes).
MAX_KEPT = 15.0
#: At most this many finished editions' last sends are kept (per process and database).
KEPT_FINISHED = 4096
#: A viewer waits at most this long for another's count of an edition, then counts it too.
WAIT_FOR_COUNT = 30.0

Counted = tuple[dict[DeliveryState, int], datetime | None]
"""An edition's counts per delivery state, and its last send."""


@dataclass(frozen=True)
class Tally:
    """An edition's counts per delivery state and its last send, as counted."""

    status: EditionStatus
    counts: dict[DeliveryState, int]
    last_sent: datetime | None
    #: When it was counted (:func:`time.monotonic`), and how long it is good for (0: not kept).
    taken: float = 0.0
    kept_for: float = 0.0

    def fresh(self, now: float) -> bool:
        return now - self.taken < self.kept_for

    def good_for(self, edition: Edition, now: float) -> bool:
        return self.status == edition.status and self.fresh(now)


@dataclass
class Tallies:
    """The counts of one process for one database (see the module's docstring)."""

    #: Guards the dictionaries only; no query runs under it.
    lock: threading.Lock = field(default_factory=threading.Lock)
    live: dict[int, Tally] = field(default_factory=dict)
    #: The editions being counted now, each with what its count's end sets.
    counting: dict[int, threading.Event] = field(default_factory=dict)
    finished: OrderedDict[tuple[int, datetime], datetime | None] = field(
        default_factory=OrderedDict
    )

    def live_counts(self, session: Session, editions: Sequence[Edition]) -> dict[int, Tally]:
        """Each live edition's tally: kept, counted by another viewer now (waited for), or
        counted here (one query for all of those)."""
        found, theirs = self._take_turns(editions)
        mine = [e for e in editions if e.id not in found and e.id not in theirs]
        found |= self._count(session, mine)
        for edition in [e for e in editions if e.id in theirs]:
            theirs[edition.id].wait(WAIT_FOR_COUNT)
            with self.lock:
                tally = self.live.get(edition.id)
            if tally is None or not tally.good_for(edition, monotonic()):
                found |= self._count(session, [edition], claimed=False)
            else:
                found[edition.id] = tally
        return found

    def _take_turns(
        self, editions: Sequence[Edition]
    ) -> tuple[dict[int, Tally], dict[int, threading.Event]]:
        """The kept tallies; the editions another viewer is counting (with what to wait on);
        the rest are marked as counted by this one."""
        with self.lock:
            now = monotonic()
            self.live = {i: t for i, t in self.live.items() if t.fresh(now)}
            kept = {e.id: t for e in editions if (t := self.live.get(e.id)) and t.good_for(e, now)}
            theirs = {e.id: self.counting[e.id] for e in editions if e.id in self.counting}
            for edition in editions:
                if edition.id not in kept and edition.id not in theirs:
                    self.counting[edition.id] = threading.Event()
            return kept, {i: event for i, event in theirs.items() if i not in kept}

    def _count(
        self, session: Session, editions: Sequence[Edition], claimed: bool = True
    ) -> dict[int, Tally]:
        """Count ``editions`` now (outside the lock) and keep the big ones; ``claimed``: this
        viewer marked them as being counted, and ends that mark."""
        if not editions:
            return {}
        started = monotonic()
        try:
            counted = live_counts(session, [e.id for e in editions])
        finally:
            if claimed:
                with self.lock:
                    ended = [self.counting.pop(e.id, None) for e in editions]
                for event in ended:
                    if event is not None:
                        event.set()
        took = monotonic() - started
        found = {}
        for edition in editions:
            counts, last_sent = counted[edition.id]
            keep = sum(counts.values()) >= KEPT_FROM
            kept_for = min(MAX_KEPT, max(MIN_KEPT, KEPT_FACTOR * took)) if keep else 0.0
            found[edition.id] = Tally(edition.status, counts, last_sent, started + took, kept_for)
        with self.lock:
            self.live.update({i: t for i, t in found.items() if t.kept_for})
        return found

    def finished_last_sent(
        self, session: Session, editions: Sequence[Edition]
    ) -> dict[int, datetime | None]:
        """Each finished edition's last send: kept, or asked for (one query for the rest)."""
        found: dict[int, datetime | None] = {}
        with self.lock:
            for edition in editions:
                self.live.pop(edition.id, None)
                key = (edition.id, edition.created_at)
                if key in self.finished:
                    found[edition.id] = self.finished[key]
        asked = [e for e in editions if e.id not in found]
        last_sent = last_sends(session, [e.id for e in asked])
        with self.lock:
            for edition in asked:
                found[edition.id] = last_sent.get(edition.id)
                self.finished[(edition.id, edition.created_at)] = found[edition.id]
            while len(self.finished) > KEPT_FINISHED:
                self.finished.popitem(last=False)
        return found


_TALLIES: "WeakKeyDictionary[Engine, Tallies]" = WeakKeyDictionary()
_TALLIES_LOCK = threading.Lock()


def tallies_of(db_engine: Engine) -> Tallies:
    """The counts kept for the database behind ``db_engine`` (one set per engine)."""
    with _TALLIES_LOCK:
        found = _TALLIES.get(db_engine)
        if found is None:
            found = _TALLIES[db_engine] = Tallies()
        return found


def live_counts(session: Session, edition_ids: Sequence[int]) -> dict[int, Counted]:
    """Counts per delivery state of several editions at once, and each one's last send: one
    grouped query, one read of their deliveries, whatever the number of editions."""
    counts: dict[int, dict[DeliveryState, int]] = {edition_id: {} for edition_id in edition_ids}
    last_sent: dict[int, datetime] = {}
    if edition_ids:
        for edition_id, state, n, last in session.execute(
            select(Delivery.edition_id, Delivery.state, func.count(), func.max(Delivery.sent_at))
            .where(Delivery.edition_id.in_(edition_ids))
            .group_by(Delivery.edition_id, Delivery.state)
        ):
            counts[edition_id][state] = n
            if last is not None and (edition_id not in last_sent or last > last_sent[edition_id]):
                last_sent[edition_id] = last
    return {i: (counts[i], last_sent.get(i)) for i in edition_ids}


def last_sends(session: Session, edition_ids: Sequence[int]) -> dict[int, datetime]:
    """When each edition's last message was sent: one grouped query (none for no editions)."""
    if not edition_ids:
        return {}
    return {
        edition_id: last
        for edition_id, last in session.execute(
            select(Delivery.edition_id, func.max(Delivery.sent_at))
            .where(Delivery.edition_id.in_(edition_ids), Delivery.sent_at.is_not(None))
            .group_by(Delivery.edition_id)
        )
        if last is not None
    }
