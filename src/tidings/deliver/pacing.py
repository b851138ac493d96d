"""A worker's side of the shared sending limits (see :mod:`tidings.deliver.limits`).

Before a job is sent, :meth:`Pacer.pace` takes a send time from its receiving domain's rate
and from the relay's, each out of a small batch reserved on the shared clock in one UPDATE
(about :data:`BATCH_SECONDS` of the rate, never more than :data:`AHEAD_SECONDS` ahead): the
database sees one statement per batch, not per message. It waits for that time; when a
domain's rate is spent for longer, the job goes back to the queue for then instead, so it
neither burns its lease nor holds a connection that other domains' jobs could use.

A relay with a connection limit gives each connection a leased slot (:meth:`take_slot`);
a 421 reply, or an enhanced status 4.7.x, lowers the rate of the key it speaks for
(:meth:`heard`). Which limits exist is read every :data:`REFRESH_SECONDS`: a limit set, or
learnt by another worker, holds here within that long.
"""

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tidings.db.engine import Database
from tidings.db.models import SendLimitScope
from tidings.deliver import limits, limitslots
from tidings.deliver.limitkeys import Key, domain_name
from tidings.deliver.limits import Known, NotBefore, Reserved
from tidings.errors import InvalidInput
from tidings.mail.status import enhanced_status
from tidings.mail.transport import DeliveryError, Transport
from tidings.metrics import RATE_LIMIT_WAITS, SLOW_DOWNS

log = logging.getLogger(__name__)

#: A reservation covers about this long of the rate (at least one send).
BATCH_SECONDS = 0.25
#: At most this many sends per reservation.
MAX_BATCH = limits.MAX_RESERVE
#: Nothing is reserved while the shared clock is more than this far ahead of now.
AHEAD_SECONDS = 1.0
#: A reserved time that went by unused for longer than this is dropped (a pile of old
#: reservations used at once would be a burst).
STALE_SECONDS = 1.0
#: A job whose domain has all its connections busy comes back after this long.
BUSY_RETRY_SECONDS = 5.0
#: How often the worker reads which limits exist.
REFRESH_SECONDS = 5.0
#: A rate measurement window (for the starting rate of a key slowed before it had one).
MEASURE_SECONDS = 10.0

#: Replies at these stages speak about the recipient, so its domain is slowed; before
#: them (greeting, EHLO, login, MAIL FROM), and when the stage is not known, the relay.
_RECIPIENT_STAGES = ("rcpt", "data")


def _moment(at: float, now: float) -> datetime:
    """Unix time ``at`` as a datetime, at most a day from ``now`` (a clock far ahead, from
    a wrong clock or a tiny rate, must not make a time out of range)."""
    return datetime.fromtimestamp(min(at, now + 86_400.0), UTC)


def is_slow_down(code: int, text: str) -> bool:
    """A "slow down" reply: 421 (service closing the channel: too much, too fast), or a
    temporary refusal whose enhanced status is 4.7.x ("451 4.7.1 Try again later",
    "421 4.7.28 ... rate limited")."""
    status = enhanced_status(text)
    return code == 421 or (400 <= code < 500 and status is not None and status.startswith("4.7."))


@dataclass(frozen=True)
class Unanswered(NotBefore):
    """No send time: the database did not answer; ask again after :data:`BUSY_RETRY_SECONDS`."""


#: An address in a relay's reply (RCPT-stage replies usually repeat the recipient's).
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;]+")

#: Why a job comes back when its send time could not be reserved.
_UNANSWERED = "has no send time: the sending limits did not answer"


@dataclass(frozen=True)
class Paced:
    """The job may go now (``later`` None), after having waited, holding ``slot`` of its
    domain's connections if it has a limit; or its receiving domain is at its rate or its
    connections until ``later`` (``why``) and the job goes back to the queue."""

    later: datetime | None = None
    why: str = ""
    slot: tuple[Key, int] | None = None


class Pacer:
    """One worker's share of the limits: reserved send times per key, its relay slots."""

    def __init__(
        self,
        db: Database,
        holder: str,
        relay: Key | None,
        lease: timedelta,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.holder = holder
        self.relay = relay
        self.lease = lease
        self._clock = clock
        self.known = Known(frozenset(), {})
        self._read_at = -REFRESH_SECONDS
        self._times: dict[Key, deque[float]] = {}
        self._rates: dict[Key, float] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._slots: dict[int, int] = {}
        self._slot_locks: dict[Key, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._counts: Counter[Key] = Counter()
        self._last_counts: Counter[Key] = Counter()
        self._window_start = time.monotonic()

    # -- which limits exist ------------------------------------------------------------

    async def refresh(self, force: bool = False) -> None:
        """Read the limits again if the last read is older than :data:`REFRESH_SECONDS`;
        a failed read keeps the last one (logged)."""
        if not force and time.monotonic() - self._read_at < REFRESH_SECONDS:
            return
        self._read_at = time.monotonic()
        try:
            self.known = await asyncio.to_thread(self._read)
        except Exception as exc:  # the limits last read stay in force
            log.warning("cannot read the sending limits (%s)", type(exc).__name__)
        # What is kept per key goes with its rate (learnt domains come and go); a lock in
        # use stays until the next refresh.
        for key in set(self._times) | set(self._rates) | set(self._locks):
            if key not in self.known.rated:
                self._times.pop(key, None)
                self._rates.pop(key, None)
                if not self._locks.get(key, asyncio.Lock()).locked():
                    self._locks.pop(key, None)

    def _read(self) -> Known:
        with self.db.session() as session:
            return limits.known_limits(session)

    def relay_connections(self) -> int | None:
        """The relay's connection limit, if it has one."""
        return None if self.relay is None else self.known.connections.get(self.relay)

    # -- rates -------------------------------------------------------------------------

    async def pace(self, recipient: str) -> Paced:
        """Wait for the recipient's domain's and the relay's send times; or, when the
        domain's rate is spent for longer (or no time could be reserved), say until when
        (the job goes back queued, its domain slot given back)."""
        await self.refresh()
        domain = self._domain_key(recipient)
        slot: tuple[Key, int] | None = None
        if domain is not None:
            self._counts[domain] += 1
            most = self.known.connections.get(domain)
            if most is not None:
                taken_slot = await self._domain_slot(domain)
                if taken_slot is None:
                    RATE_LIMIT_WAITS.labels("domain").inc()
                    later = _moment(self._clock() + BUSY_RETRY_SECONDS, self._clock())
                    return Paced(later, f"{domain.name} has all {most} of its connections busy")
                slot = (domain, taken_slot)
        try:
            paced = await self._wait_for_times(domain)
        except BaseException:  # cancelled while waiting, say: the slot goes back first
            await self.release(Paced(slot=slot))
            raise
        if paced.later is not None:
            await self.release(Paced(slot=slot))
            return paced
        return Paced(slot=slot)

    async def _wait_for_times(self, domain: Key | None) -> Paced:
        """Wait for the domain's and the relay's send times (``later`` None); or until when
        the job is to come back."""
        waits: dict[str, float] = {}
        if domain is not None and domain in self.known.rated:
            taken = await self._take_time(domain)
            if isinstance(taken, NotBefore):
                RATE_LIMIT_WAITS.labels("domain").inc()
                why = _UNANSWERED if isinstance(taken, Unanswered) else "is at its sending rate"
                return Paced(_moment(taken.at, self._clock()), f"{domain.name} {why}")
            if taken is not None:
                waits["domain"] = taken
        if self.relay is not None:
            self._counts[self.relay] += 1
            if self.relay in self.known.rated:
                relay_time = await self._relay_time()
                if isinstance(relay_time, Unanswered):
                    later = _moment(relay_time.at, self._clock())
                    return Paced(later, f"the relay {_UNANSWERED}")
                waits["relay"] = relay_time
        self._measure()
        if waits:
            scope, at = max(waits.items(), key=lambda item: item[1])
            delay = at - self._clock()
            if delay > 0:
                RATE_LIMIT_WAITS.labels(scope).inc()
                await asyncio.sleep(delay)
        return Paced()

    async def _domain_slot(self, key: Key) -> int | None:
        try:
            return await self._take_slot(key)
        except Exception as exc:  # as if busy: the job comes back shortly
            log.warning("cannot take a domain's connection slot (%s)", type(exc).__name__)
            return None

    async def release(self, paced: Paced) -> None:
        """Give back the domain slot a send held (logged if the database did not take it:
        the slot's lease runs out by itself)."""
        if paced.slot is None:
            return
        key, slot = paced.slot
        try:
            await asyncio.to_thread(self._release, key, slot)
        except Exception as exc:
            log.warning("cannot give back a domain's connection slot (%s)", type(exc).__name__)

    async def _relay_time(self) -> float | Unanswered:
        """The relay's next send time; while its clock is too far ahead, wait and ask again
        (every job needs the relay: there is nothing better to do meanwhile). Unanswered:
        the database did not answer (the job comes back, nothing is held meanwhile)."""
        assert self.relay is not None
        while True:
            taken = await self._take_time(self.relay)
            if isinstance(taken, Unanswered):
                return taken
            if not isinstance(taken, NotBefore):
                return self._clock() if taken is None else taken
            RATE_LIMIT_WAITS.labels("relay").inc()
            await asyncio.sleep(max(0.01, taken.at - self._clock()))

    async def _take_time(self, key: Key) -> float | NotBefore | None:
        """A send time reserved for ``key`` (reserving a batch when none is left); None:
        ``key`` has no rate after all; :class:`Unanswered` when the database failed."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            times = self._times.setdefault(key, deque())
            while times and times[0] < self._clock() - STALE_SECONDS:
                times.popleft()
            if times:
                return times.popleft()
            count = max(1, min(MAX_BATCH, round(self._rates.get(key, 1.0) * BATCH_SECONDS)))
            try:
                got = await asyncio.to_thread(self._reserve, key, count)
            except Exception as exc:  # the job comes back shortly; its slot is given back
                log.warning("cannot reserve %s send times (%s)", key.scope, type(exc).__name__)
                return Unanswered(self._clock() + BUSY_RETRY_SECONDS, self._clock())
            # The database's times, on this worker's clock: it waits what the database said
            # (read after the reply, so a little longer, never shorter).
            shift = self._clock() - got.now if got is not None else 0.0
            if isinstance(got, Reserved):
                self._rates[key] = got.rate
                times.extend(got.at(i) + shift for i in range(got.count))
                return times.popleft()
            return None if got is None else NotBefore(got.at + shift, got.now + shift)

    def _reserve(self, key: Key, count: int) -> Reserved | NotBefore | None:
        with self.db.session() as session:
            got = limits.reserve(session, key, count, AHEAD_SECONDS)
            session.commit()
            return got

    @staticmethod
    def _domain_key(recipient: str) -> Key | None:
        try:
            return Key(SendLimitScope.domain, domain_name(recipient))
        except InvalidInput:
            return None

    def _measure(self) -> None:
        """Roll the measuring window (sends per key over the last :data:`MEASURE_SECONDS`)."""
        now = time.monotonic()
        if now - self._window_start >= MEASURE_SECONDS:
            self._last_counts, self._counts = self._counts, Counter()
            self._window_start = now

    def measured(self, key: Key) -> float:
        """Messages per second this worker sent to ``key`` lately."""
        elapsed = max(time.monotonic() - self._window_start, 1.0)
        return max(self._counts[key] / elapsed, self._last_counts[key] / MEASURE_SECONDS)

    # -- slow-down replies -----------------------------------------------------------

    def heard(self, recipient: str, result: object) -> Key | None:
        """Note what became of a send (or of opening a connection, ``recipient`` empty): a
        slow-down reply lowers the rate of the key it speaks for, in the background. Returns
        that key."""
        key = self.slow_down_key(recipient, result)
        if key is None:
            return None
        assert isinstance(result, DeliveryError)
        SLOW_DOWNS.labels(key.scope.value).inc()
        self._times.pop(key, None)  # what was reserved at the old rate is not used
        # Stored without addresses (the limit's row outlives any reader's erasure); logged
        # as its code and enhanced status only (a hostile relay may put line breaks in it).
        reply = _ADDRESS.sub("<address>", f"{result.code} {result.message}")
        gist = f"{result.code} {enhanced_status(result.message) or ''}".rstrip()
        task = asyncio.create_task(self._slow_down(key, reply, gist, self.measured(key)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return key

    def slow_down_key(self, recipient: str, result: object) -> Key | None:
        """The key a reply slows down: the recipient's domain for a RCPT- or DATA-stage
        reply, else (greeting, EHLO, login, MAIL FROM) the relay; None for any other result."""
        if not isinstance(result, DeliveryError) or not is_slow_down(result.code, result.message):
            return None
        if result.stage in _RECIPIENT_STAGES and recipient:
            return self._domain_key(recipient)
        return self.relay

    async def _slow_down(self, key: Key, reply: str, gist: str, measured: float) -> None:
        try:
            rate = await asyncio.to_thread(self._write_slow_down, key, reply, measured)
        except Exception as exc:  # the next slow-down reply tries again
            log.warning("cannot record a slow-down for %s (%s)", key.name, type(exc).__name__)
            return
        log.info("%s %s asked to slow down (%s): %.3g messages/s", key.scope, key.name, gist, rate)
        self.known = Known(self.known.rated | {key}, self.known.connections)

    def _write_slow_down(self, key: Key, reply: str, measured: float) -> float:
        with self.db.session() as session:
            rate = limits.slow_down(session, key, reply, measured)
            if rate is None and self.relay is not None:  # too many domains: the relay's
                rate = limits.slow_down(session, self.relay, reply, measured)
            session.commit()
            return rate or 0.0

    # -- relay connection slots --------------------------------------------------------

    def holds_slot(self, transport: Transport) -> bool:
        """Whether ``transport`` may be used: the relay has no connection limit, or it
        holds one of its slots (one numbered below the limit: a lowered limit takes
        effect on running workers within a refresh)."""
        most = self.relay_connections()
        slot = self._slots.get(id(transport))
        return most is None or (slot is not None and slot < most)

    async def take_slot(self, transport: Transport) -> bool:
        """Take a relay slot for ``transport`` unless it needs none or holds one; False when
        every slot is held (by this worker or others)."""
        if self.holds_slot(transport):
            return True
        await self.give_back(transport)  # a slot past a lowered limit
        assert self.relay is not None
        try:
            slot = await self._take_slot(self.relay)
        except Exception as exc:  # no slot: the connection waits or leaves
            log.warning("cannot take a connection slot (%s)", type(exc).__name__)
            return False
        if slot is None:
            return False
        self._slots[id(transport)] = slot
        return True

    async def _take_slot(self, key: Key) -> int | None:
        """One of ``key``'s slots, taken one at a time here (this worker's takers would race
        each other for the same lowest free slot; a lost race costs two more statements)."""
        async with self._slot_locks.setdefault(key, asyncio.Lock()):
            return await asyncio.to_thread(self._take_slot_now, key)

    def _take_slot_now(self, key: Key) -> int | None:
        with self.db.session() as session:
            slot = limitslots.take_slot(session, key, self.holder, self.lease)
            session.commit()
            return slot

    async def give_back(self, transport: Transport) -> None:
        """Give back ``transport``'s slot, if it holds one (logged if the database did not
        take it: the slot's lease runs out by itself)."""
        slot = self._slots.pop(id(transport), None)
        if slot is None or self.relay is None:
            return
        try:
            await asyncio.to_thread(self._release, self.relay, slot)
        except Exception as exc:
            log.warning("cannot give back a connection slot (%s)", type(exc).__name__)

    def _release(self, key: Key, slot: int) -> None:
        with self.db.session() as session:
            limitslots.release_slot(session, key, slot, self.holder)
            session.commit()

    async def close(self) -> None:
        """Let the slow-downs being written finish."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)
