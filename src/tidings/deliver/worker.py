"""The worker loop: claim due deliveries, send them over a pool of SMTP connections, and
write the results behind in small batches.

Exactly once comes from the ledger: a claim is a lease with a token of its own, renewed by
a task of its own for as long as the worker lives (whatever the send path waits on), and
every result is written only if that lease still holds. A worker claims no more than its
observed send rate starts within part of a lease. Results are flushed every
``write_behind_seconds`` or every ``FLUSH_AT`` results, whichever comes first, so what a
crash can repeat is the messages in flight plus about that long of acknowledged ones.

The worker is this event loop and its parts: :class:`WorkerDatabase` (its database work,
run in threads), :class:`SendPool` (the connections and the queue of claimed jobs; given a
way to open connections, as ``tidings worker`` is, it grows them while they raise the rate,
up to ``smtp_max_connections``, see :class:`PoolSizer`),
:class:`WriteBehind` (the results), :class:`LeaseBook` and :class:`LeaseKeeper` (its leases
and their renewal), :class:`Beater` (its heartbeat, which also renews its relay connection
slots), :class:`Pacer` (the sending limits shared with every other worker). Claims, result
writes and upkeep run one at a time, so they never wait on each other's row locks; lease
renewals and heartbeats run beside them, so a slow claim or write never delays one.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.errors import is_transient, outage_name
from tidings.db.models import SendLimitScope
from tidings.deliver.heartbeats import BEAT_SECONDS, Beater, Measure, stale_after
from tidings.deliver.leases import LeaseBook, LeaseKeeper, claim_limit
from tidings.deliver.limitkeys import Key, relay_name
from tidings.deliver.measured import TimedTransport, counted
from tidings.deliver.pacing import Pacer
from tidings.deliver.policy import RetryPolicy
from tidings.deliver.poolsize import PoolSizer
from tidings.deliver.sending import SendPool
from tidings.deliver.worker_db import WorkerDatabase
from tidings.deliver.writebehind import WorkerStats, WriteBehind
from tidings.mail.transport import SEND_DEADLINE_TIMEOUTS, Transport, configured_target

__all__ = ["Worker", "WorkerStats", "worker_name"]

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0
OUTAGE_FIRST_SECONDS = 1.0
OUTAGE_MAX_SECONDS = 30.0
MAINTENANCE_SECONDS = 5.0

P = ParamSpec("P")
T = TypeVar("T")


def worker_name() -> str:
    """Unique per process: host, pid and a random suffix (short enough that a lease token,
    this name plus a claim number, fits the ledger's column)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One worker process's sending engine."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        transports: Sequence[Transport],
        name: str | None = None,
        beat_seconds: float = BEAT_SECONDS,
        connect: Callable[[], Transport] | None = None,
    ) -> None:
        """``transports``: the connections it starts with; ``connect``: opens one more
        (without it, the pool stays as given)."""
        self.settings = settings
        self.name = name or worker_name()
        self.stats = WorkerStats()
        self.store = WorkerDatabase(db, settings)
        self.book = LeaseBook(self.name, settings.lease_seconds)
        self.keeper = LeaseKeeper(self.book, self.store.renew)
        # Editions no longer sending, as the last renewal (or a result's mass refusal) saw.
        self._stopped = self.keeper.stopped
        # One database conversation at a time for claims, writes and upkeep.
        self._db_lock = asyncio.Lock()
        every = settings.write_behind_seconds
        self.results = WriteBehind(
            self.store, self._db_lock, self.book, self.stats, self._stopped, every
        )
        deadline = settings.smtp_timeout_seconds * SEND_DEADLINE_TIMEOUTS
        policy = RetryPolicy.from_settings(settings)
        # Every result is counted for the metrics, and every send timed.
        self._record = counted(self.results.record)
        timed = [TimedTransport(transport) for transport in transports]
        sizer = None if connect is None else PoolSizer(len(timed), settings.smtp_max_connections)
        # Its slots live as long as its heartbeat says it is alive.
        self.pacer = Pacer(db, self.name, relay_key(settings), stale_after(beat_seconds))
        self.sends = SendPool(
            timed,
            policy,
            self.book,
            self._stopped,
            self.stats,
            self._record,
            deadline,
            connect=None if connect is None else lambda: TimedTransport(connect()),
            sizer=sizer,
            pacer=self.pacer,
            clock=self.store.clock,
            room=self.results.room,
        )
        self._last_maintenance = 0.0
        # Its heartbeat, on a timer of its own like the lease renewals (never behind _db_lock).
        self.beater = Beater(db, self.name, self._measure, beat_seconds)

    def _measure(self) -> Measure:
        return Measure(self.sends.rate.per_second(), self.sends.held())

    async def _db(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run database work in a thread, one conversation at a time."""
        async with self._db_lock:
            return await asyncio.to_thread(work, *args, **kwargs)

    def _claim_room(self) -> int:
        """How many more deliveries to claim now: none while at least half of what may be
        held is still waiting or in flight. At least two per connection may be held (one in
        flight, one waiting), so no connection idles between claims and the pool sees that
        jobs wait, which is what lets it grow."""
        limit = claim_limit(
            self.sends.rate.per_second(),
            self.settings.lease_seconds,
            2 * self.sends.connections(),
            self.settings.worker_batch_size,
        )
        held = self.sends.held()
        if not self.sends.connections():
            return 0  # no relay slot free: the workers that hold them send
        return 0 if held > limit // 2 else limit - held

    async def _claim(self, room: int) -> bool:
        """Claim up to ``room`` deliveries and queue them; False if nothing was due."""
        token = self.book.new_token()
        asked_at = time.monotonic()
        prepared = await self._db(self.store.claim, token, room)
        for job in prepared.jobs:
            # Claimed, so its edition was sending: a pause this worker saw earlier is stale
            # (an editor resumed it since) and must not hand these back until the next renewal.
            self._stopped.pop(job.claim.edition_id, None)
        claimed = [j.claim.delivery_id for j in prepared.jobs]
        self.book.claimed(token, claimed + [o.delivery_id for o in prepared.gone], asked_at)
        for outcome in prepared.gone:
            self._record(outcome)
        for job in prepared.jobs:
            self.sends.put(job)
        return bool(prepared.jobs or prepared.gone)

    async def _step(self, drain: bool, stop: asyncio.Event) -> bool:
        """Claim and queue one batch (or wait, or idle); True once a drain has nothing left."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_maintenance >= MAINTENANCE_SECONDS:
            self._last_maintenance = loop.time()
            await self._db(self.store.upkeep)
            await self.pacer.refresh()
        room = self._claim_room()
        if room <= 0 and self.sends.held():
            await self.sends.wait_for_progress(IDLE_POLL_SECONDS / 4)
            return False
        if room > 0 and await self._claim(room):
            return False
        if self.sends.held():
            await self.sends.wait_for_progress(IDLE_POLL_SECONDS / 4)
            return False
        await self.results.flush()
        if drain:
            if not await self._db(self.store.upkeep):
                return True
            await _sleep_or_stop(stop, IDLE_POLL_SECONDS / 4)
        else:
            await _sleep_or_stop(stop, IDLE_POLL_SECONDS)
        return False

    async def run(self, *, drain: bool, stop: asyncio.Event) -> WorkerStats:
        """Send until ``stop`` is set (or, with ``drain``, until nothing is due).

        A long-running worker rides out a database outage (it retries with backoff); a
        draining one, used from cron and scripts, fails instead so the caller sees it.
        """
        await self.pacer.refresh(force=True)
        self.sends.start()
        flusher = asyncio.create_task(self.results.run(), name="result writer")
        renewer = asyncio.create_task(self.keeper.run(), name="lease renewer")
        beater = asyncio.create_task(self.beater.run())
        backoff = OUTAGE_FIRST_SECONDS
        try:
            while not stop.is_set():
                _raise_if_died(flusher, renewer)
                try:
                    if await self._step(drain, stop):
                        break
                    backoff = OUTAGE_FIRST_SECONDS
                except Exception as exc:
                    if drain or not is_transient(exc):
                        raise
                    log.error(
                        "database unavailable (%s); retrying in %.0f s", outage_name(exc), backoff
                    )
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, OUTAGE_MAX_SECONDS)
        finally:
            try:
                await self._shut_down(flusher, renewer)
            finally:
                beater.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beater
                await self.beater.forget()
        return self.stats

    async def _shut_down(self, flusher: asyncio.Task[None], renewer: asyncio.Task[None]) -> None:
        """Hand back what was not started, let in-flight sends finish, write every result,
        and only then stop renewing (a result still unwritten keeps its lease alive).
        Each step runs whatever the one before raised; a background task's own error was
        raised by :meth:`run` already (:func:`_raise_if_died`)."""
        self.results.closing()  # no sender waits for room now: the flusher is to stop
        try:
            await self.sends.stop()
            flusher.cancel()
            # Let it finish cancelling first: results it was writing go back to the buffer,
            # and the last flush below writes them (else they stayed leased, and were sent
            # again after the lease expired).
            await _ended(flusher)
            await self.results.flush()
        finally:
            renewer.cancel()
            await _ended(renewer)
            try:
                with contextlib.suppress(OperationalError):
                    await self._db(self.store.upkeep)
            finally:
                await self.sends.close()


def relay_key(settings: Settings) -> Key:
    """The relay this worker sends through, as its limits name it (the catcher when no
    SMTP URL is set)."""
    target = configured_target(settings)
    return Key(SendLimitScope.relay, relay_name(target.host, target.port))


def _raise_if_died(*tasks: asyncio.Task[None]) -> None:
    """Raise the error of a background task that ended (they run until cancelled): a worker
    whose results are no longer written or whose leases no longer renewed must stop, not
    wait for room for ever or send what another worker takes back."""
    for task in tasks:
        if task.done():
            task.result()
            raise RuntimeError(f"the worker's task {task.get_name()} ended")


async def _ended(task: asyncio.Task[None]) -> None:
    """Until ``task`` (cancelled, or dead of an error :func:`_raise_if_died` raised) ends."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
