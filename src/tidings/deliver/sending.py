"""A worker's sending side: one task per SMTP connection, each taking the next queued job.

Connections stay open across messages. Given a way to open more, the pool grows while more
connections raise the rate and jobs wait, up to a cap, and a connection the relay refuses
shrinks it (:class:`~tidings.deliver.poolsize.PoolSizer` decides); a job whose connection
was refused never reached the relay, so another connection takes it.

A job is sent only while its edition is still sending and its lease has a good margin left
(see :class:`~tidings.deliver.leases.LeaseBook`); whatever happens to a send becomes its
outcome, as the retry policy judges it (:func:`~tidings.deliver.policy.verdict_for`).

Given a :class:`~tidings.deliver.pacing.Pacer`, the pool keeps the limits shared by every
worker: each job waits for its send time (a job whose receiving domain's rate is spent goes
back to the queue, no attempt counted), a "slow down" reply lowers the rate it speaks for,
and while the relay has a connection limit no connection sends without holding a slot.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from tidings.db.models import DeliveryState, EditionStatus
from tidings.deliver.dbclock import DbClock
from tidings.deliver.leases import LeaseBook, SendRate
from tidings.deliver.ledger import Outcome
from tidings.deliver.pacing import Pacer
from tidings.deliver.policy import RetryPolicy, verdict_for
from tidings.deliver.poolsize import PoolSizer
from tidings.deliver.worker_db import Job
from tidings.deliver.writebehind import WorkerStats
from tidings.mail.transport import ConnectRefusedError, SmtpReply, Transport, send_within

log = logging.getLogger(__name__)

#: A connection the pool opened beyond its starting size leaves after this long without a
#: job (an idle worker keeps no more of the relay's connections than it started with).
IDLE_SECONDS = 30.0
#: The pool's last connection, with no relay slot free, asks again this often.
SLOT_POLL_SECONDS = 1.0


class Idle:
    """No job came within the idle time."""


IDLE = Idle()


class SendPool:
    """The worker's connections and the queue of claimed jobs they send."""

    def __init__(
        self,
        transports: Sequence[Transport],
        policy: RetryPolicy,
        leases: LeaseBook,
        stopped: dict[int, EditionStatus],
        stats: WorkerStats,
        record: Callable[[Outcome], None],
        send_deadline: float,
        *,
        connect: Callable[[], Transport] | None = None,
        sizer: PoolSizer | None = None,
        idle_seconds: float = IDLE_SECONDS,
        pacer: Pacer | None = None,
        clock: DbClock | None = None,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        #: The open (or opening) connections; without ``connect`` and ``sizer``, a fixed set.
        self.transports = list(transports)
        self._connect = connect if sizer is not None else None
        self._sizer = sizer
        self._idle_seconds = idle_seconds
        self._pacer = pacer
        #: The database's time, for every time written or compared with the ledger's.
        self.clock = DbClock() if clock is None else clock
        self.rate = SendRate()
        self._policy = policy
        self._leases = leases
        #: Editions no longer sending (paused, cancelled), as the worker last learnt.
        self._stopped = stopped
        self._stats = stats
        self._record = record
        #: Waited for before each message (its job in hand): room among the results not yet
        #: written.
        self._room = room
        self._send_deadline = send_deadline
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._in_flight = 0
        self._progress = asyncio.Event()
        self._senders: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._senders = [asyncio.create_task(self._send_loop(t)) for t in self.transports]

    def connections(self) -> int:
        """How many connections the pool may send on now (those holding a relay slot, when
        the relay has a connection limit)."""
        if self._pacer is None:
            return len(self.transports)
        return sum(1 for t in self.transports if self._pacer.holds_slot(t))

    def put(self, job: Job) -> None:
        self._queue.put_nowait(job)

    def held(self) -> int:
        """Jobs waiting or in flight."""
        return self._queue.qsize() + self._in_flight

    async def wait_for_progress(self, seconds: float) -> None:
        """Until a send finishes, at most ``seconds``."""
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout=seconds)

    async def stop(self) -> None:
        """Hand back the jobs not started (as released results) and let the sends in flight
        finish."""
        self._stopping = True  # no connection is added from now on
        self._release_waiting()
        for sender in self._senders:
            if not sender.done():
                self._queue.put_nowait(None)
        await asyncio.gather(*self._senders, return_exceptions=True)
        # A job whose connection was refused meanwhile came back to the queue.
        self._release_waiting()

    def _release_waiting(self) -> None:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                self._release(job)
            self._queue.task_done()

    def _release(self, job: Job) -> None:
        """Hand ``job`` back unsent: the worker is stopping."""
        now = self.clock.now()
        reply = "released by a stopping worker"
        self._record(job.claim.outcome(DeliveryState.queued, None, reply, now, now))

    async def _room_for(self, job: Job) -> bool:
        """Wait, ``job`` in hand, for room among the results not yet written; False when the
        pool began stopping meanwhile (the job is handed back, not sent)."""
        if self._room is None:
            return True
        await self._room()
        if not self._stopping:
            return True
        self._release(job)
        return False

    async def close(self) -> None:
        """Close every connection, all at once (each QUIT waits a round trip to the relay),
        and give back their relay slots."""
        closing, self.transports = self.transports, []
        await asyncio.gather(*(t.close() for t in closing), return_exceptions=True)
        if self._pacer is not None:
            await asyncio.gather(*(self._pacer.give_back(t) for t in closing))
            await self._pacer.close()

    async def _send_loop(self, transport: Transport, opening: bool = False) -> None:
        """Send jobs on ``transport`` until told to stop, or until the pool no longer wants
        this connection; ``opening``: a connection added by growth, opened before it takes
        a job (so a refusal costs no job anything)."""
        try:
            if opening and not await self._slotted(transport, opening=True):
                return
            if opening and await self._refused(transport) is not None and self._shrink(transport):
                return
            while True:
                if not await self._slotted(transport):
                    if transport not in self.transports or self._stopping:
                        return
                    continue
                job = await self._next_job()
                if job is None:
                    break
                if isinstance(job, Idle):
                    if self._rest(transport):
                        return
                    continue
                if not await self._room_for(job):
                    self._queue.task_done()
                    continue
                self._in_flight += 1
                try:
                    keep = await self._take(transport, job)
                finally:
                    self._in_flight -= 1
                    self._queue.task_done()
                    self._progress.set()
                if not keep:
                    return
            self._queue.task_done()
        finally:
            if transport not in self.transports:
                await transport.close()
                if self._pacer is not None:
                    await self._pacer.give_back(transport)

    async def _slotted(self, transport: Transport, opening: bool = False) -> bool:
        """Whether ``transport`` may send: it needs no relay slot, holds one, or got one now.
        Without one, a connection added by growth (or any but the last) leaves the pool, and
        the pool's ceiling follows the slots it holds; the last one waits a moment (False)."""
        if self._pacer is None or await self._pacer.take_slot(transport):
            return True
        if transport in self.transports and (opening or len(self.transports) > 1):
            self.transports.remove(transport)
            if self._sizer is not None:
                self._sizer.refused(len(self.transports))
            log.info("no connection slot free at the relay; sending over %d", len(self.transports))
            return False
        await asyncio.sleep(SLOT_POLL_SECONDS)
        return False

    async def _next_job(self) -> Job | Idle | None:
        """The next job (None: stop); :data:`IDLE` after ``idle_seconds`` without one while
        the pool has connections beyond its starting size."""
        if self._sizer is None or len(self.transports) <= self._sizer.start:
            return await self._queue.get()
        try:
            async with asyncio.timeout(self._idle_seconds):
                return await self._queue.get()
        except TimeoutError:
            return IDLE

    def _rest(self, transport: Transport) -> bool:
        """No job came for a while: a connection beyond the starting size leaves."""
        if self._sizer is None or len(self.transports) <= self._sizer.start:
            return False
        self.transports.remove(transport)
        self._sizer.shrunk(len(self.transports))
        return True

    async def _take(self, transport: Transport, job: Job) -> bool:
        """Send (or hold back) one job and record its outcome; False when this connection
        is to go (refused, or more than the pool wants)."""
        held, outcome = self._held_back(job)
        paced = None
        try:
            if not held and self._pacer is not None:
                paced = await self._pacer.pace(job.recipient.email)
                if paced.later is not None:
                    held, outcome = True, self._paced(job, paced.why, paced.later)
                else:  # it may have waited: its edition paused, its lease ran low meanwhile
                    held, outcome = self._held_back(job)
            if not held:
                keep, outcome = await self._send_or_refuse(transport, job)
                if not keep:
                    return False
        finally:
            if paced is not None and self._pacer is not None:
                await self._pacer.release(paced)
        if outcome is not None:
            self._record(outcome)
        if self._sizer is not None and len(self.transports) > self._sizer.size:
            self.transports.remove(transport)  # the pool wants fewer connections now
            return False
        return True

    async def _send_or_refuse(self, transport: Transport, job: Job) -> tuple[bool, Outcome | None]:
        """Open ``transport`` if needed and send ``job``: (True, its outcome); (False, None)
        when the relay refused the connection and another takes the job (back in the queue)."""
        refusal = await self._refused(transport)
        if refusal is not None and self._shrink(transport):
            self._queue.put_nowait(job)  # never offered to the relay: another sends it
            return False, None
        if refusal is not None:
            self.rate.tick()
            outcome = self._judged(job, refusal)
        else:
            outcome = await self._attempt(transport, job)
        if outcome.state == DeliveryState.sent:
            self._grow()
        return True, outcome

    async def _refused(self, transport: Transport) -> Exception | None:
        """Open ``transport`` unless it is open; the refusal, if the relay refused it."""
        try:
            async with asyncio.timeout(self._send_deadline):
                await transport.open()
        except TimeoutError:
            await transport.close()
            return ConnectRefusedError(0, f"no greeting within {self._send_deadline:.0f} s")
        except ConnectRefusedError as refusal:
            return refusal
        except Exception:  # any other failure: the send itself meets it and judges it
            return None
        return None

    def _shrink(self, transport: Transport) -> bool:
        """A refused connection leaves the pool unless it is the last one (which then
        records the refusal as its job's outcome, as a fixed pool does)."""
        if self._sizer is None or len(self.transports) <= 1:
            return False
        self.transports.remove(transport)
        working = self._sizer.refused(len(self.transports))
        log.info("the relay refused a connection; sending over %d", working)
        return True

    def _grow(self) -> None:
        """A message was accepted: open the connections the sizer now wants."""
        if self._sizer is None or self._connect is None or self._stopping:
            return
        wanted = self._sizer.accepted(backlog=self._queue.qsize() > 0)
        while len(self.transports) < wanted:
            transport = self._connect()
            self.transports.append(transport)
            self._senders.append(asyncio.create_task(self._send_loop(transport, opening=True)))

    def _held_back(self, job: Job) -> tuple[bool, Outcome | None]:
        """Whether a queued job must not be sent now, and the outcome to write for it.

        Edition paused or cancelled meanwhile: handed back, or cancelled. Lost to another
        worker: nothing is written (it is not ours). Lease running out (the database has not
        answered renewals): handed back.
        """
        claim, now = job.claim, self.clock.now()
        stopped = self._stopped.get(claim.edition_id)
        if stopped is not None:
            state = (
                DeliveryState.cancelled
                if stopped == EditionStatus.cancelled
                else DeliveryState.queued
            )
            reply = f"not sent: edition {stopped.value}"
            return True, claim.outcome(state, None, reply, now, now)
        if self._leases.may_start(claim):
            return False, None
        self._stats.not_started += 1
        if self._leases.is_lost(claim.delivery_id):
            self._leases.settled([(claim.delivery_id, claim.lease_token)])
            log.warning("delivery %s not sent: its lease was taken back", claim.delivery_id)
            return True, None
        reply = "released: the lease could not be renewed in time"
        return True, claim.outcome(DeliveryState.queued, None, reply, now, now)

    async def _attempt(self, transport: Transport, job: Job) -> Outcome:
        """Send one job and turn whatever happens into its outcome."""
        claim, recipient = job.claim, job.recipient
        result: SmtpReply | Exception
        try:
            message = job.mail.message_for(
                recipient.subscription_id,
                recipient.email,
                recipient.name,
                claim.message_id,
                signed_up_at=recipient.signed_up_at,
            )
            result = await send_within(
                transport,
                job.mail.envelope_sender(claim.delivery_id),
                recipient.email,
                message,
                self._send_deadline,
            )
        except Exception as error:  # every failure becomes a recorded outcome
            result = error
        finally:
            self.rate.tick()
        return self._judged(job, result)

    def _paced(self, job: Job, why: str, later: datetime) -> Outcome:
        """``job`` goes back to the queue until ``later``, unsent and no attempt counted:
        its receiving domain is at its shared rate or connections (``why``) until then."""
        now, claim = self.clock.now(), job.claim
        if self._policy.gives_up(claim.created_at, now):  # waiting has its limit too
            reply = f"gave up: {why} since its give-up time"
            return claim.outcome(DeliveryState.failed, None, reply, now)
        reply = f"waiting: {why} (not an attempt)"
        due = self.clock.of_host(later)  # the pacer's times are on this host's clock
        return claim.outcome(DeliveryState.queued, None, reply, now, due, counted=False)

    def _judged(self, job: Job, result: SmtpReply | Exception) -> Outcome:
        """The outcome of ``job`` from what became of its send; a slow-down reply lowers
        the rate it speaks for. (A connection refused while others work is the relay's
        connection limit speaking: the pool shrinks and the rate stays; only a refusal of
        the last connection, judged here, slows the relay down.)"""
        if self._pacer is not None:
            self._pacer.heard(job.recipient.email, result)
        claim, now = job.claim, self.clock.now()
        verdict = verdict_for(self._policy, result, claim.attempts, claim.created_at, now)
        if verdict.unexpected and isinstance(result, Exception):
            log.exception("delivery %s failed unexpectedly", claim.delivery_id, exc_info=result)
        return claim.outcome(
            verdict.state, verdict.code, verdict.reply, now, verdict.retry_at, verdict.bounce
        )
