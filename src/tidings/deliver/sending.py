"""A worker's sending side: one task per SMTP connection, each taking the next queued job.

A job is sent only while its edition is still sending and its lease has a good margin left
(see :class:`~tidings.deliver.leases.LeaseBook`); whatever happens to a send becomes its
outcome, as the retry policy judges it (:func:`~tidings.deliver.policy.verdict_for`).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from tidings.db.models import DeliveryState, EditionStatus
from tidings.db.types import utcnow
from tidings.deliver.leases import LeaseBook, SendRate
from tidings.deliver.ledger import Outcome
from tidings.deliver.policy import RetryPolicy, verdict_for
from tidings.deliver.worker_db import Job
from tidings.deliver.writebehind import WorkerStats
from tidings.mail.transport import SmtpReply, Transport, send_within

log = logging.getLogger(__name__)


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
    ) -> None:
        self.transports = list(transports)
        self.rate = SendRate()
        self._policy = policy
        self._leases = leases
        #: Editions no longer sending (paused, cancelled), as the worker last learnt.
        self._stopped = stopped
        self._stats = stats
        self._record = record
        self._send_deadline = send_deadline
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._in_flight = 0
        self._progress = asyncio.Event()
        self._senders: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._senders = [asyncio.create_task(self._send_loop(t)) for t in self.transports]

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
        now = utcnow()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                reply = "released by a stopping worker"
                self._record(job.claim.outcome(DeliveryState.queued, None, reply, now, now))
            self._queue.task_done()
        for _ in self._senders:
            self._queue.put_nowait(None)
        await asyncio.gather(*self._senders, return_exceptions=True)

    async def close(self) -> None:
        for transport in self.transports:
            await transport.close()

    async def _send_loop(self, transport: Transport) -> None:
        while (job := await self._queue.get()) is not None:
            self._in_flight += 1
            try:
                held, outcome = self._held_back(job)
                if not held:
                    outcome = await self._attempt(transport, job)
                if outcome is not None:
                    self._record(outcome)
            finally:
                self._in_flight -= 1
                self._queue.task_done()
                self._progress.set()
        self._queue.task_done()

    def _held_back(self, job: Job) -> tuple[bool, Outcome | None]:
        """Whether a queued job must not be sent now, and the outcome to write for it.

        Edition paused or cancelled meanwhile: handed back, or cancelled. Lost to another
        worker: nothing is written (it is not ours). Lease running out (the database has not
        answered renewals): handed back.
        """
        claim, now = job.claim, utcnow()
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
        now = utcnow()
        verdict = verdict_for(self._policy, result, claim.attempts, claim.created_at, now)
        if verdict.unexpected and isinstance(result, Exception):
            log.exception("delivery %s failed unexpectedly", claim.delivery_id, exc_info=result)
        return claim.outcome(
            verdict.state, verdict.code, verdict.reply, now, verdict.retry_at, verdict.bounce
        )
