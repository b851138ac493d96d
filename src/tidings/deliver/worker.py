"""The worker loop: claim due deliveries, send them over a pool of SMTP connections, and
write the results behind in small batches.

Crash safety comes from the ledger: a claim is a lease, results are flushed at least every
``write_behind_seconds`` (or every ``FLUSH_AT`` results), and a lease that is not renewed
expires so another worker (or this one, restarted) takes the delivery back. What a crash can
repeat is bounded by the messages in flight plus those acknowledged since the last flush.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError

from tidings.compose.mail import EditionMail
from tidings.compose.service import edition_mail
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, Edition, Newsletter
from tidings.db.types import utcnow
from tidings.deliver import ledger
from tidings.deliver.ledger import Claim, Outcome, Recipient
from tidings.deliver.policy import RetryPolicy, means_no_such_user
from tidings.deliver.transport import (
    PermanentDeliveryError,
    TransientDeliveryError,
    Transport,
    UncertainDeliveryError,
)

log = logging.getLogger(__name__)

#: Results are written once this many are waiting, or after write_behind_seconds.
FLUSH_AT = 100
IDLE_POLL_SECONDS = 1.0
OUTAGE_FIRST_SECONDS = 1.0
OUTAGE_MAX_SECONDS = 30.0
MAINTENANCE_SECONDS = 5.0


T = TypeVar("T")
RETRYABLE_SQLSTATES = {"40P01", "40001", "55P03"}  # deadlock, serialization, lock not available
RETRIES = 5


def retry_transient(work: Callable[..., T], *args: Any) -> T:
    """Run ``work``, again after a short pause if the database reports a deadlock or a busy
    SQLite file; each attempt is a fresh transaction, so a retry repeats nothing half-done."""
    for attempt in range(RETRIES):
        try:
            return work(*args)
        except OperationalError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            busy = "database is locked" in str(exc.orig)
            if attempt == RETRIES - 1 or not (sqlstate in RETRYABLE_SQLSTATES or busy):
                raise
            log.warning("database busy (%s); retrying", sqlstate or "locked")
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def worker_name() -> str:
    """Unique per process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerStats:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0

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


@dataclass(frozen=True)
class Job:
    claim: Claim
    mail: EditionMail
    recipient: Recipient


@dataclass
class _Buffer:
    outcomes: list[Outcome] = field(default_factory=list)


class Worker:
    """One worker process's sending engine."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        transports: Sequence[Transport],
        name: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.transports = list(transports)
        self.name = name or worker_name()
        self.policy = RetryPolicy.from_settings(settings)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.stats = WorkerStats()
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._buffer = _Buffer()
        self._mails: dict[int, EditionMail] = {}
        # One database conversation at a time per worker: its own claims, writes and upkeep
        # never wait on each other's row locks.
        self._db_lock = asyncio.Lock()
        self._last_maintenance = 0.0

    # -- database work, run in a thread so the event loop keeps sending ---------------------

    def _claim_and_prepare(self, limit: int) -> tuple[list[Job], list[Outcome]]:
        now = utcnow()
        with self.db.session() as session:
            claims = ledger.claim_due(session, self.name, limit, self.lease, now)
            session.commit()
            jobs: list[Job] = []
            gone: list[Outcome] = []
            by_edition: dict[int, list[Claim]] = {}
            for claim in claims:
                by_edition.setdefault(claim.edition_id, []).append(claim)
            for edition_id, group in by_edition.items():
                edition = session.get_one(Edition, edition_id)
                newsletter = session.get_one(Newsletter, edition.newsletter_id)
                mail = self._mails.get(edition_id)
                if mail is None:
                    mail = self._mails[edition_id] = edition_mail(
                        self.settings, edition, newsletter
                    )
                ids = [c.subscriber_id for c in group if c.subscriber_id is not None]
                found = ledger.recipients(session, newsletter.id, ids)
                for claim in group:
                    recipient = found.get(claim.subscriber_id) if claim.subscriber_id else None
                    if recipient is None:
                        gone.append(
                            Outcome(
                                claim.delivery_id,
                                DeliveryState.failed,
                                None,
                                "not sent: no longer subscribed or suppressed",
                                now,
                            )
                        )
                    else:
                        jobs.append(Job(claim, mail, recipient))
            return jobs, gone

    def _write(self, outcomes: list[Outcome]) -> None:
        with self.db.session() as session:
            ledger.record_outcomes(session, outcomes)
            session.commit()

    def _maintain(self) -> bool:
        """Renew our leases, reclaim expired ones, close finished editions; True if work is due."""
        now = utcnow()
        with self.db.session() as session:
            ledger.renew_leases(session, self.name, self.lease, now)
            reclaimed = ledger.reclaim_expired(session, now, self.policy.at_most_once)
            if reclaimed:
                log.warning("reclaimed %d deliveries whose lease expired", reclaimed)
            ledger.finish_editions(session, now)
            due = ledger.has_due_work(session, now)
            session.commit()
            return due

    # -- the event loop side --------------------------------------------------------------

    def _outcome_for_error(self, job: Job, error: Exception) -> Outcome:
        now = utcnow()
        claim = job.claim
        if isinstance(error, PermanentDeliveryError):
            suppress = (
                claim.subscriber_id if means_no_such_user(error.code, error.message) else None
            )
            return Outcome(
                claim.delivery_id,
                DeliveryState.failed,
                error.code,
                str(error),
                now,
                suppress_subscriber=suppress,
            )
        if isinstance(error, UncertainDeliveryError) and self.policy.at_most_once:
            return Outcome(claim.delivery_id, DeliveryState.uncertain, None, str(error), now)
        if isinstance(error, TransientDeliveryError):
            code = error.code or None
            if self.policy.gives_up(claim.created_at, now):
                return Outcome(
                    claim.delivery_id,
                    DeliveryState.failed,
                    code,
                    f"gave up after {claim.attempts} attempts: {error}",
                    now,
                )
            return Outcome(
                claim.delivery_id,
                DeliveryState.deferred,
                code,
                str(error),
                now,
                next_attempt_at=self.policy.next_attempt(claim.attempts, now),
            )
        log.exception("delivery %s failed unexpectedly", claim.delivery_id, exc_info=error)
        return Outcome(
            claim.delivery_id,
            DeliveryState.failed,
            None,
            f"internal error: {type(error).__name__}: {error}",
            now,
        )

    async def _send_loop(self, transport: Transport) -> None:
        while (job := await self._queue.get()) is not None:
            try:
                message = job.mail.message_for(
                    job.recipient.subscription_id,
                    job.recipient.email,
                    job.recipient.name,
                    job.claim.message_id,
                )
                reply = await transport.send(job.mail.sender, job.recipient.email, message)
                outcome = Outcome(
                    job.claim.delivery_id, DeliveryState.sent, reply.code, reply.message, utcnow()
                )
            except Exception as error:  # every failure becomes a recorded outcome
                outcome = self._outcome_for_error(job, error)
            self._record(outcome)
            self._queue.task_done()
            if len(self._buffer.outcomes) >= FLUSH_AT:
                await self.flush()
        self._queue.task_done()

    def _record(self, outcome: Outcome) -> None:
        self.stats.count(outcome.state)
        self._buffer.outcomes.append(outcome)

    async def _db(self, work: Callable[..., T], *args: Any) -> T:
        """Run database work in a thread, one at a time, retrying deadlocks and lock waits."""
        async with self._db_lock:
            return await asyncio.to_thread(retry_transient, work, *args)

    async def flush(self) -> None:
        pending, self._buffer.outcomes = self._buffer.outcomes, []
        if not pending:
            return
        try:
            await self._db(self._write, pending)
        except (OperationalError, asyncio.CancelledError):
            # Not written (the database is away, or shutdown cancelled us while we waited
            # for it): keep the results for the next flush, or a message already sent would
            # be sent again once its lease expired. Writing one twice is harmless.
            self._buffer.outcomes[:0] = pending
            raise

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.write_behind_seconds)
            try:
                await self.flush()
            except OperationalError as exc:
                log.error("cannot write results yet (%s); keeping them", type(exc.orig).__name__)

    async def _release_unstarted(self) -> None:
        """On shutdown, hand claimed-but-unsent deliveries back to the queue."""
        now = utcnow()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                self._record(
                    Outcome(
                        job.claim.delivery_id,
                        DeliveryState.queued,
                        None,
                        "released by a stopping worker",
                        now,
                        next_attempt_at=now,
                    )
                )
            self._queue.task_done()

    async def _step(self, batch: int, drain: bool, stop: asyncio.Event) -> bool:
        """Claim and queue one batch (or idle); True once a drain has nothing left."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_maintenance >= MAINTENANCE_SECONDS:
            self._last_maintenance = loop.time()
            await self._db(self._maintain)
        if self._queue.qsize() >= batch // 2:
            await asyncio.sleep(0.01)
            return False
        jobs, gone = await self._db(self._claim_and_prepare, batch)
        for outcome in gone:
            self._record(outcome)
        for job in jobs:
            self._queue.put_nowait(job)
        if jobs or gone:
            return False
        await self._queue.join()
        await self.flush()
        if drain:
            if not await self._db(self._maintain):
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
        batch = self.settings.worker_batch_size
        senders = [asyncio.create_task(self._send_loop(t)) for t in self.transports]
        flusher = asyncio.create_task(self._flush_periodically())
        backoff = OUTAGE_FIRST_SECONDS
        try:
            while not stop.is_set():
                try:
                    if await self._step(batch, drain, stop):
                        break
                    backoff = OUTAGE_FIRST_SECONDS
                except OperationalError as exc:
                    if drain:
                        raise
                    log.error(
                        "database unavailable (%s); retrying in %.0f s",
                        type(exc.orig).__name__,
                        backoff,
                    )
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, OUTAGE_MAX_SECONDS)
        finally:
            await self._release_unstarted()
            for _ in senders:
                self._queue.put_nowait(None)
            await asyncio.gather(*senders, return_exceptions=True)
            flusher.cancel()
            # Let it finish cancelling first: results it was writing go back to the buffer,
            # and the last flush below writes them (else they stayed leased, and were sent
            # again after the lease expired).
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self.flush()
            with contextlib.suppress(OperationalError):
                await self._db(self._maintain)
            for transport in self.transports:
                await transport.close()
        return self.stats


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
