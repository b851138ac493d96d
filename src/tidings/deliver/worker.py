"""The worker loop: claim due deliveries, send them over a pool of SMTP connections, and
write the results behind in small batches.

Exactly once comes from the ledger: a claim is a lease with a token of its own, renewed by
a task of its own for as long as the worker lives (whatever the send path waits on), and
every result is written only if that lease still holds. A worker claims no more than its
observed send rate starts within part of a lease. Results are flushed every
``write_behind_seconds`` or every ``FLUSH_AT`` results, whichever comes first, so what a
crash can repeat is the messages in flight plus about that long of acknowledged ones.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.errors import is_contention
from tidings.db.models import DeliveryState, Edition, EditionStatus, Newsletter
from tidings.db.types import utcnow
from tidings.deliver import ledger
from tidings.deliver.leases import LeaseBook, SendRate, claim_limit
from tidings.deliver.ledger import Claim, Outcome, Recipient, Recorded, Renewal
from tidings.deliver.policy import RetryPolicy, means_no_such_user
from tidings.mail.edition import EditionMail, edition_mail
from tidings.mail.transport import (
    SEND_DEADLINE_TIMEOUTS,
    PermanentDeliveryError,
    TransientDeliveryError,
    Transport,
    UncertainDeliveryError,
    send_within,
)

log = logging.getLogger(__name__)

#: Results are written once this many are waiting, or after write_behind_seconds: at 1,000
#: messages/s both are about 20 ms of acknowledged results, all a crash can repeat.
FLUSH_AT = 20
#: A send (connect, MAIL, RCPT, DATA) must end within this many SMTP timeouts overall.
RENEW_AT_MOST_SECONDS = 2.0
IDLE_POLL_SECONDS = 1.0
OUTAGE_FIRST_SECONDS = 1.0
OUTAGE_MAX_SECONDS = 30.0
MAINTENANCE_SECONDS = 5.0


T = TypeVar("T")
RETRIES = 5


def retry_transient(work: Callable[..., T], *args: Any) -> T:
    """Run ``work``, again after a short pause if the database reports a deadlock or a busy
    SQLite file; each attempt is a fresh transaction, so a retry repeats nothing half-done."""
    for attempt in range(RETRIES):
        try:
            return work(*args)
        except OperationalError as exc:
            if attempt == RETRIES - 1 or not is_contention(exc):
                raise
            log.warning("database busy (%s); retrying", type(exc.orig).__name__)
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def worker_name() -> str:
    """Unique per process: host, pid and a random suffix (short enough that a lease token,
    this name plus a claim number, fits the ledger's column)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def renew_interval(lease_seconds: float) -> float:
    """How often leases are renewed: a quarter lease, and at least every 2 s, so a pause or
    a cancel also reaches the claimed-but-unstarted deliveries quickly."""
    return min(lease_seconds / 4, RENEW_AT_MOST_SECONDS)


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


@dataclass(frozen=True)
class Job:
    claim: Claim
    mail: EditionMail
    recipient: Recipient


@dataclass(frozen=True)
class Prepared:
    """One claim, ready to send: its token, the jobs, and results known without sending."""

    token: str
    jobs: list[Job]
    gone: list[Outcome]


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
        self.leases = LeaseBook(self.name, settings.lease_seconds)
        self.rate = SendRate()
        self.stats = WorkerStats()
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._in_flight = 0
        self._progress = asyncio.Event()
        self._flush_soon = asyncio.Event()
        self._buffer: list[Outcome] = []
        self._mails: dict[int, EditionMail] = {}
        # Editions that are no longer sending (paused, cancelled), as the last renewal saw.
        self._stopped: dict[int, EditionStatus] = {}
        # Editions whose first results were judged (no mass refusal): no need to look again.
        self._judged: set[int] = set()
        # One database conversation at a time per worker: its own claims, writes, renewals
        # and upkeep never wait on each other's row locks.
        self._db_lock = asyncio.Lock()
        self._last_maintenance = 0.0
        self._send_deadline = settings.smtp_timeout_seconds * SEND_DEADLINE_TIMEOUTS

    # -- database work, run in a thread so the event loop keeps sending ---------------------

    def _claim_and_prepare(self, token: str, limit: int) -> Prepared:
        now = utcnow()
        with self.db.session() as session:
            claims = ledger.claim_due(session, token, limit, self.lease, now)
            session.commit()
            jobs: list[Job] = []
            gone: list[Outcome] = []
            by_edition: dict[int, list[Claim]] = {}
            for claim in claims:
                by_edition.setdefault(claim.edition_id, []).append(claim)
            for edition_id, group in by_edition.items():
                mail = self._mail_for(session, edition_id)
                edition = session.get_one(Edition, edition_id)
                ids = [c.subscriber_id for c in group if c.subscriber_id is not None]
                found = ledger.recipients(session, edition.newsletter_id, ids)
                for claim in group:
                    recipient = found.get(claim.subscriber_id) if claim.subscriber_id else None
                    if recipient is None:
                        reply = "not sent: no longer subscribed or suppressed"
                        gone.append(claim.outcome(DeliveryState.failed, None, reply, now))
                    else:
                        jobs.append(Job(claim, mail, recipient))
            return Prepared(token, jobs, gone)

    def _mail_for(self, session: Session, edition_id: int) -> EditionMail:
        """The edition's rendered mail, built once per edition and process."""
        mail = self._mails.get(edition_id)
        if mail is None:
            edition = session.get_one(Edition, edition_id)
            newsletter = session.get_one(Newsletter, edition.newsletter_id)
            mail = self._mails[edition_id] = edition_mail(self.settings, edition, newsletter)
        return mail

    def _write(self, outcomes: list[Outcome], judged: frozenset[int]) -> Recorded:
        with self.db.session() as session:
            recorded = ledger.record_outcomes(session, outcomes, judged)
            session.commit()
            return recorded

    def _renew(self, tokens: list[str]) -> Renewal:
        with self.db.session() as session:
            renewal = ledger.renew_leases(session, tokens, self.lease, utcnow())
            session.commit()
            return renewal

    def _maintain(self) -> bool:
        """Reclaim expired leases, close finished editions; True if work is due."""
        now = utcnow()
        with self.db.session() as session:
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
            suppress = means_no_such_user(error.code, error.message)
            return claim.outcome(
                DeliveryState.failed, error.code, str(error), now, suppress=suppress
            )
        if isinstance(error, UncertainDeliveryError) and self.policy.at_most_once:
            return claim.outcome(DeliveryState.uncertain, None, str(error), now)
        if isinstance(error, TransientDeliveryError):
            code = error.code or None
            if self.policy.gives_up(claim.created_at, now):
                reply = f"gave up after {claim.attempts} attempts: {error}"
                return claim.outcome(DeliveryState.failed, code, reply, now)
            retry_at = self.policy.next_attempt(claim.attempts, now)
            return claim.outcome(DeliveryState.deferred, code, str(error), now, retry_at)
        log.exception("delivery %s failed unexpectedly", claim.delivery_id, exc_info=error)
        reply = f"internal error: {type(error).__name__}: {error}"
        return claim.outcome(DeliveryState.failed, None, reply, now)

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
        if self.leases.may_start(claim):
            return False, None
        self.stats.not_started += 1
        if self.leases.is_lost(claim.delivery_id):
            self.leases.settled([(claim.delivery_id, claim.lease_token)])
            log.warning("delivery %s not sent: its lease was taken back", claim.delivery_id)
            return True, None
        reply = "released: the lease could not be renewed in time"
        return True, claim.outcome(DeliveryState.queued, None, reply, now, now)

    async def _attempt(self, transport: Transport, job: Job) -> Outcome:
        """Send one job and turn whatever happens into its outcome."""
        try:
            message = job.mail.message_for(
                job.recipient.subscription_id,
                job.recipient.email,
                job.recipient.name,
                job.claim.message_id,
            )
            reply = await send_within(
                transport, job.mail.sender, job.recipient.email, message, self._send_deadline
            )
            return job.claim.outcome(DeliveryState.sent, reply.code, reply.message, utcnow())
        except Exception as error:  # every failure becomes a recorded outcome
            return self._outcome_for_error(job, error)
        finally:
            self.rate.tick()

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

    def _record(self, outcome: Outcome) -> None:
        self.stats.count(outcome.state)
        self._buffer.append(outcome)
        if len(self._buffer) >= FLUSH_AT:
            self._flush_soon.set()

    async def _db(self, work: Callable[..., T], *args: Any) -> T:
        """Run database work in a thread, one at a time, retrying deadlocks and lock waits."""
        async with self._db_lock:
            return await asyncio.to_thread(retry_transient, work, *args)

    async def flush(self) -> None:
        """Write the buffered results now (each fenced by its lease)."""
        pending, self._buffer = self._buffer, []
        if not pending:
            return
        try:
            recorded = await self._db(self._write, pending, frozenset(self._judged))
        except (OperationalError, asyncio.CancelledError):
            # Not written (the database is away, or shutdown cancelled us while we waited
            # for it): keep the results for the next flush, or a message already sent would
            # be sent again once its lease expired. Writing one twice is harmless.
            self._buffer[:0] = pending
            raise
        self.leases.settled([(o.delivery_id, o.lease_token) for o in pending])
        self._judged |= recorded.judged
        if recorded.dropped:
            self.stats.dropped += len(recorded.dropped)
            log.warning(
                "dropped %d result(s) whose lease was lost (deliveries %s)",
                len(recorded.dropped),
                ", ".join(map(str, recorded.dropped[:20])),
            )
        for edition_id, reason in recorded.paused.items():
            log.error("edition %d paused: %s", edition_id, reason)
            self._stopped[edition_id] = EditionStatus.paused

    async def _flush_periodically(self) -> None:
        """Write results behind: once FLUSH_AT are waiting, or write_behind_seconds after
        the last write, whichever comes first."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._flush_soon.wait(), timeout=self.settings.write_behind_seconds
                )
            self._flush_soon.clear()
            try:
                await self.flush()
            except OperationalError as exc:
                log.error("cannot write results yet (%s); keeping them", type(exc.orig).__name__)
                await asyncio.sleep(self.settings.write_behind_seconds)

    async def renew(self) -> None:
        """Renew every lease this worker holds; learn which it lost and which editions were
        paused or cancelled meanwhile."""
        tokens = self.leases.tokens()
        if not tokens:
            self._stopped = {}
            return
        asked_at = time.monotonic()
        # Not behind the worker's database lock: a slow claim or write never delays it.
        renewal = await asyncio.to_thread(retry_transient, self._renew, tokens)
        lost = self.leases.renewed(tokens, renewal.held, asked_at)
        if lost:
            log.warning("lost the lease of %d deliveries (taken back by another worker)", lost)
        self._stopped = {**renewal.stopped}

    async def _renew_periodically(self) -> None:
        """Renew leases for as long as this worker lives, whatever the send path waits on."""
        every = renew_interval(self.settings.lease_seconds)
        while True:
            await asyncio.sleep(every)
            try:
                await self.renew()
            except OperationalError as exc:
                log.error("cannot renew leases (%s); retrying", type(exc.orig).__name__)

    async def _release_unstarted(self) -> None:
        """On shutdown, hand claimed-but-unsent deliveries back to the queue."""
        now = utcnow()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                reply = "released by a stopping worker"
                self._record(job.claim.outcome(DeliveryState.queued, None, reply, now, now))
            self._queue.task_done()

    def _claim_room(self) -> int:
        """How many more deliveries to claim now: none while at least half of what may be
        held is still waiting or in flight."""
        limit = claim_limit(
            self.rate.per_second(),
            self.settings.lease_seconds,
            len(self.transports),
            self.settings.worker_batch_size,
        )
        held = self._queue.qsize() + self._in_flight
        return 0 if held > limit // 2 else limit - held

    async def _wait_for_progress(self, seconds: float) -> None:
        """Until a send finishes, at most ``seconds``."""
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout=seconds)

    async def _claim(self, room: int) -> bool:
        """Claim up to ``room`` deliveries and queue them; False if nothing was due."""
        token = self.leases.new_token()
        asked_at = time.monotonic()
        prepared = await self._db(self._claim_and_prepare, token, room)
        for job in prepared.jobs:
            # Claimed, so its edition was sending: a pause this worker saw earlier is stale
            # (an editor resumed it since) and must not hand these back until the next renewal.
            self._stopped.pop(job.claim.edition_id, None)
        claimed = [j.claim.delivery_id for j in prepared.jobs]
        self.leases.claimed(token, claimed + [o.delivery_id for o in prepared.gone], asked_at)
        for outcome in prepared.gone:
            self._record(outcome)
        for job in prepared.jobs:
            self._queue.put_nowait(job)
        return bool(prepared.jobs or prepared.gone)

    async def _step(self, drain: bool, stop: asyncio.Event) -> bool:
        """Claim and queue one batch (or wait, or idle); True once a drain has nothing left."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_maintenance >= MAINTENANCE_SECONDS:
            self._last_maintenance = loop.time()
            await self._db(self._maintain)
        room = self._claim_room()
        if room <= 0:
            await self._wait_for_progress(IDLE_POLL_SECONDS / 4)
            return False
        if await self._claim(room):
            return False
        if self._queue.qsize() or self._in_flight:
            await self._wait_for_progress(IDLE_POLL_SECONDS / 4)
            return False
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
        senders = [asyncio.create_task(self._send_loop(t)) for t in self.transports]
        flusher = asyncio.create_task(self._flush_periodically())
        renewer = asyncio.create_task(self._renew_periodically())
        backoff = OUTAGE_FIRST_SECONDS
        try:
            while not stop.is_set():
                try:
                    if await self._step(drain, stop):
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
            await self._shut_down(senders, flusher, renewer)
        return self.stats

    async def _shut_down(
        self,
        senders: list[asyncio.Task[None]],
        flusher: asyncio.Task[None],
        renewer: asyncio.Task[None],
    ) -> None:
        """Hand back what was not started, let in-flight sends finish, write every result,
        and only then stop renewing (a result still unwritten keeps its lease alive)."""
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
        try:
            await self.flush()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        with contextlib.suppress(OperationalError):
            await self._db(self._maintain)
        for transport in self.transports:
            await transport.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
