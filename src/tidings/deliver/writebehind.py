"""A worker's results, written behind in small batches, each fenced by its lease.

Results are flushed every ``write_behind_seconds`` or once ``FLUSH_AT`` are waiting, whichever
comes first, so what a crash can repeat is the messages in flight plus about that long of
acknowledged ones. However slow the database is, no sender starts a message while
``UNWRITTEN_LIMIT`` results wait to be written (:meth:`WriteBehind.room`): a crash repeats at
most that many plus one per connection. A batch the database did not take stays buffered for
the next flush: a message already sent must never look unsent once its lease expires.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from tidings.db.errors import is_transient, outage_name
from tidings.db.models import DeliveryState, EditionStatus
from tidings.deliver.leases import LeaseBook
from tidings.deliver.ledger import Outcome
from tidings.deliver.worker_db import WorkerDatabase
from tidings.metrics import QUEUE_LATENCY_SECONDS

log = logging.getLogger(__name__)

#: Results are written once this many are waiting, or after write_behind_seconds: at 1,000
#: messages/s both are about 20 ms of acknowledged results, all a crash can repeat.
FLUSH_AT = 20
#: Senders wait while this many results are unwritten (buffered or being written): a flush
#: under way plus a full buffer behind it. Without it, a database slow to take a flush let
#: acknowledged results pile up, and a crash then repeated all of them.
UNWRITTEN_LIMIT = 2 * FLUSH_AT


@dataclass
class WorkerStats:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0
    #: Results not written because the lease had been lost (another worker holds it now).
    dropped: int = 0
    #: Claimed deliveries not started because their lease was lost or running out.
    not_started: int = 0

    def count(self, state: DeliveryState) -> None:
        if state == DeliveryState.sent:
            self.sent += 1
        elif state == DeliveryState.deferred:
            self.deferred += 1
        elif state == DeliveryState.failed:
            self.failed += 1
        elif state == DeliveryState.uncertain:
            self.uncertain += 1
        else:
            self.released += 1


class WriteBehind:
    """The results waiting to be written, and the editions the written ones paused."""

    def __init__(
        self,
        store: WorkerDatabase,
        db_lock: asyncio.Lock,
        leases: LeaseBook,
        stats: WorkerStats,
        stopped: dict[int, EditionStatus],
        every: float,
    ) -> None:
        self._store = store
        self._db_lock = db_lock
        self._leases = leases
        self._stats = stats
        #: Editions no longer sending, shared with the worker: a mass refusal pauses one.
        self._stopped = stopped
        self._every = every
        self._buffer: list[Outcome] = []
        self._soon = asyncio.Event()
        #: Results in the flushes under way (the flusher's, and the worker's own when idle).
        self._writing = 0
        #: Set (and replaced) at the end of each flush, for the senders waiting for room.
        self._flushed = asyncio.Event()
        #: Once shutting down, senders no longer wait for room (the flusher is stopping).
        self._closing = False
        # Editions whose first results were judged (no mass refusal): no need to look again.
        self._judged: set[int] = set()

    def record(self, outcome: Outcome) -> None:
        """Count a result, log it, and queue it for writing."""
        self._stats.count(outcome.state)
        _log_result(outcome)
        self._buffer.append(outcome)
        if len(self._buffer) >= FLUSH_AT:
            self._soon.set()

    def unwritten(self) -> int:
        """Results recorded and not yet written: buffered, or in the flush under way."""
        return len(self._buffer) + self._writing

    async def room(self) -> None:
        """Until fewer than :data:`UNWRITTEN_LIMIT` results are unwritten (or shutdown
        began): a sender calls it before it starts a message."""
        while not self._closing and self.unwritten() >= UNWRITTEN_LIMIT:
            self._soon.set()
            await self._flushed.wait()

    def closing(self) -> None:
        """Shutdown began: let every sender waiting for room go on (to its stop)."""
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        self._flushed.set()
        self._flushed = asyncio.Event()

    async def flush(self) -> None:
        """Write the buffered results now (each fenced by its lease)."""
        pending, self._buffer = self._buffer, []
        if not pending:
            return
        self._writing += len(pending)
        try:
            async with self._db_lock:
                judged = frozenset(self._judged)
                recorded = await asyncio.to_thread(self._store.write, pending, judged)
        except BaseException:
            # Not written (the database is away, shutdown cancelled us while we waited for
            # it, or worse): keep the results for the next flush, or a message already sent
            # would be sent again once its lease expired. Writing one twice is harmless.
            self._buffer[:0] = pending
            raise
        finally:
            self._writing -= len(pending)
            self._wake()
        self._leases.settled([(o.delivery_id, o.lease_token) for o in pending])
        self._judged |= recorded.judged
        for seconds in recorded.waited:
            QUEUE_LATENCY_SECONDS.observe(seconds)
        if recorded.dropped:
            self._stats.dropped += len(recorded.dropped)
            log.warning(
                "dropped %d result(s) whose lease was lost (deliveries %s)",
                len(recorded.dropped),
                ", ".join(map(str, recorded.dropped[:20])),
            )
        for edition_id, reason in recorded.paused.items():
            log.error("edition %d paused: %s", edition_id, reason)
            self._stopped[edition_id] = EditionStatus.paused

    async def run(self) -> None:
        """Write results behind: once FLUSH_AT are waiting, or ``every`` seconds after the
        last write, whichever comes first (until cancelled)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._soon.wait(), timeout=self._every)
            self._soon.clear()
            try:
                await self.flush()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.error("cannot write results yet (%s); keeping them", outage_name(exc))
                await asyncio.sleep(self._every)


def _log_result(outcome: Outcome) -> None:
    """One line per result that is not a plain send (a sent or released one only at DEBUG:
    a million lines per edition would drown the rest), with its edition, delivery and SMTP reply as
    fields of their own for JSON logs."""
    quiet = (DeliveryState.sent, DeliveryState.queued)  # sent, or released at a stop
    level = logging.DEBUG if outcome.state in quiet else logging.INFO
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "delivery %d of edition %d %s: %s",
        outcome.delivery_id,
        outcome.edition_id,
        outcome.state.value,
        outcome.reply or "no reply",
        extra={
            "edition": outcome.edition_id,
            "delivery": outcome.delivery_id,
            "state": outcome.state.value,
            "smtp_code": outcome.code,
            "smtp_reply": outcome.reply,
        },
    )
