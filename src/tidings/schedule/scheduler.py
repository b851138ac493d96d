"""The scheduler process: APScheduler 3 (AsyncIOScheduler) with thin jobs.

- one cron job per newsletter, in its time zone: serve its due slot; while any newsletter
  sends at its readers' own time, one job every minute instead for those (a reader's zone
  may be off by 30 or 45 minutes, and its slot is served within a minute);
- feed polling on an interval;
- upkeep: start the scheduled drafts whose time has come, then the ledger's upkeep (the
  service the workers run too, :mod:`tidings.deliver.upkeep`), then inbound messages past
  their retention period and rate-limit events that count for no rule any more are deleted;
- a job that rebuilds the cron jobs when newsletters change;
- with TIDINGS_BOUNCE_IMAP_URL set, polling that mailbox for the mail that comes back.
A second scheduler waits as a hot standby until the advisory lock is free.
"""

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tidings.access.ratelimit import prune as prune_rate_events
from tidings.catalog.newsletters import newsletter_schedules
from tidings.compose.lifecycle import start_due_drafts
from tidings.compose.zones import reader_time_ids
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.types import utcnow
from tidings.deliver.upkeep import run_upkeep
from tidings.errors import ConfigError
from tidings.feedback.effects import BounceScore
from tidings.inbound.imap import poll_mailbox
from tidings.inbound.service import purge_old
from tidings.ingest.service import poll_sources
from tidings.schedule.lock import SchedulerLock
from tidings.schedule.slots import ZoneMemory, newsletter_trigger, serve_due_slots

log = logging.getLogger(__name__)
STANDBY_RETRY_SECONDS = 5.0
UPKEEP_SECONDS = 30
REFRESH_SECONDS = 60
#: The job that serves every reader-time newsletter, at the top of every minute.
READER_TIME_JOB = "newsletter-reader-time"


def _start_drafts(db: Database, settings: Settings, now: datetime) -> list[str]:
    start_due_drafts(db, settings, now)
    return []


def _ledger(db: Database, settings: Settings, now: datetime) -> list[str]:
    score = BounceScore.from_settings(settings)
    return list(run_upkeep(db, settings.at_most_once, score, now).failed)


def _purge_inbound(db: Database, settings: Settings, now: datetime) -> list[str]:
    purge_old(db, settings, now)  # an indexed look at the oldest rows: cheap when none are due
    return []


def _prune_rate_events(db: Database, settings: Settings, now: datetime) -> list[str]:
    # Buckets nobody comes back to (one per client address) are cleaned nowhere else.
    prune_rate_events(db, now)
    return []


#: The upkeep's services, in order; each runs on its own, so one failing never stops the
#: other (the ledger's upkeep also runs its own steps each on its own, and names them).
UPKEEP_STEPS: tuple[tuple[str, Callable[[Database, Settings, datetime], list[str]]], ...] = (
    ("start scheduled drafts", _start_drafts),
    ("ledger upkeep", _ledger),
    ("purge old inbound messages", _purge_inbound),
    ("prune old rate-limit events", _prune_rate_events),
)


def ledger_upkeep(db: Database, settings: Settings) -> list[str]:
    """Start due drafts, then take back expired leases and close finished editions; the
    names of the steps that failed (each is logged, and tried again at the next upkeep)."""
    now = utcnow()
    failed = []
    for name, step in UPKEEP_STEPS:
        try:
            failed += step(db, settings, now)
        except Exception:
            log.exception("upkeep step %r failed; the other steps went on", name)
            failed.append(name)
    return failed


class TidingsScheduler:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._fingerprint: tuple[tuple[str, str, str], ...] = ()
        #: The reader-time newsletters' zones, read at most every few minutes.
        self._zones = ZoneMemory()
        #: Set on the way out, so a feed fetch in flight stops at once (no wait for it).
        self._stop_polls = threading.Event()
        #: One serving of the due slots at a time: every job serves every newsletter's due
        #: slot, and jobs fire in the same second (the every-minute job and a newsletter's
        #: 07:00), so two at once would render the same slot twice. A job that finds one
        #: running waits here, holding no thread, then finds what it served remembered.
        self._serving = asyncio.Lock()

    async def _serve_slots(self) -> None:
        async with self._serving:
            await asyncio.to_thread(serve_due_slots, self.db, self.settings, utcnow(), self._zones)

    async def _poll(self) -> None:
        await asyncio.to_thread(poll_sources, self.db, self.settings, cancel=self._stop_polls)

    async def _poll_bounces(self) -> None:
        """One poll of the bounce mailbox; a mailbox that cannot be reached is one line in
        the log (no trace), and the next interval tries again."""
        try:
            await asyncio.to_thread(poll_mailbox, self.db, self.settings)
        except (ConnectionError, ConfigError) as exc:
            log.warning("the bounce mailbox was not polled: %s", exc)

    async def _upkeep(self) -> None:
        await asyncio.to_thread(ledger_upkeep, self.db, self.settings)

    async def _catch_up(self) -> None:
        """Serve a slot missed while no scheduler was active; a failure here is logged and
        the scheduler runs on (the newsletters' own jobs try again)."""
        try:
            await self._serve_slots()
        except Exception:
            log.exception("catching up with missed slots failed; the schedule goes on")

    def _newsletters(self) -> tuple[tuple[str, str, str], ...]:
        """(job id, crontab line, time zone) of every newsletter's every cadence; the
        reader-time newsletters share one every-minute job (:data:`READER_TIME_JOB`)."""
        reader_time = reader_time_ids(self.db)
        jobs = [
            (f"newsletter-{s.newsletter_id}-{s.cadence.value}", s.cron, s.timezone)
            for s in newsletter_schedules(self.db)
            if s.newsletter_id not in reader_time
        ]
        if reader_time:
            jobs.append((READER_TIME_JOB, "* * * * *", "UTC"))
        return tuple(jobs)

    async def refresh_jobs(self) -> None:
        """(Re)build one cron job per newsletter when the newsletters changed."""
        fingerprint = await asyncio.to_thread(self._newsletters)
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        for job in self.scheduler.get_jobs():
            if job.id.startswith("newsletter-"):
                job.remove()
        grace = int(self.settings.schedule_grace_hours * 3600) or None
        scheduled = 0
        for job_id, cron, timezone in fingerprint:
            try:
                trigger = newsletter_trigger(cron, timezone)
            except (ValueError, LookupError) as exc:  # logged once: until the newsletter changes
                log.error("%s: schedule %r in %s is not usable: %s", job_id, cron, timezone, exc)
                continue
            self.scheduler.add_job(
                self._serve_slots,
                trigger,
                id=job_id,
                misfire_grace_time=grace,
                coalesce=True,
                max_instances=1,
            )
            scheduled += 1
        log.info("scheduled %d newsletter schedule(s)", scheduled)

    async def run(self, stop: asyncio.Event) -> None:
        lock = SchedulerLock(self.db)
        while not stop.is_set():
            if await asyncio.to_thread(lock.try_acquire):
                break
            log.info("another scheduler is active; waiting as a hot standby")
            await _wait(stop, STANDBY_RETRY_SECONDS)
        if stop.is_set():
            lock.release()
            return
        log.info("this scheduler is active")
        poll_minutes = self.settings.poll_interval_minutes
        self.scheduler.add_job(
            self._poll,
            "interval",
            minutes=poll_minutes,
            id="poll",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._upkeep,
            "interval",
            seconds=UPKEEP_SECONDS,
            id="upkeep",
            max_instances=1,
            coalesce=True,
        )
        if self.settings.bounce_imap_url is not None:
            self.scheduler.add_job(
                self._poll_bounces,
                "interval",
                minutes=self.settings.bounce_imap_interval_minutes,
                id="bounce-mailbox",
                next_run_time=datetime.now(UTC),
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.add_job(
            self.refresh_jobs,
            "interval",
            seconds=REFRESH_SECONDS,
            id="refresh",
            max_instances=1,
            coalesce=True,
        )
        try:
            await self.refresh_jobs()
        except Exception:  # the refresh job tries again every REFRESH_SECONDS
            log.exception("building the newsletters' jobs failed; trying again shortly")
        self.scheduler.start()
        try:
            await self._catch_up()
            while not stop.is_set():
                await _wait(stop, UPKEEP_SECONDS)
                if not await asyncio.to_thread(lock.still_held):
                    log.error("lost the scheduler lock; stopping")
                    break
        finally:
            self._stop_polls.set()
            self.scheduler.shutdown(wait=False)
            lock.release()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
