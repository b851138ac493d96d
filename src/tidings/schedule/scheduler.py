"""The scheduler process: APScheduler 3 (AsyncIOScheduler) with thin jobs.

- one cron job per newsletter, in its time zone: serve its due slot;
- feed polling on an interval;
- ledger upkeep: reclaim expired leases, close finished editions (deferred deliveries become
  due by their next-attempt time, which the workers' claim query honours);
- a job that rebuilds the cron jobs when newsletters change.
A second scheduler waits as a hot standby until the advisory lock is free.
"""

import asyncio
import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from tidings.compose.lifecycle import start_due_drafts
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter
from tidings.db.types import utcnow
from tidings.deliver import ledger
from tidings.ingest.service import poll_sources
from tidings.schedule.lock import SchedulerLock
from tidings.schedule.slots import newsletter_trigger, schedules_of, serve_due_slots

log = logging.getLogger(__name__)
STANDBY_RETRY_SECONDS = 5.0
UPKEEP_SECONDS = 30
REFRESH_SECONDS = 60


def ledger_upkeep(db: Database, settings: Settings) -> None:
    now = utcnow()
    start_due_drafts(db, now)
    with db.session() as session:
        ledger.reclaim_expired(session, now, settings.at_most_once)
        ledger.finish_editions(session, now)
        session.commit()


class TidingsScheduler:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._fingerprint: tuple[tuple[str, str, str], ...] = ()

    async def _serve_slots(self) -> None:
        await asyncio.to_thread(serve_due_slots, self.db, self.settings, utcnow())

    async def _poll(self) -> None:
        await asyncio.to_thread(poll_sources, self.db, self.settings)

    async def _upkeep(self) -> None:
        await asyncio.to_thread(ledger_upkeep, self.db, self.settings)

    def _newsletters(self) -> tuple[tuple[str, str, str], ...]:
        """(job id, crontab line, time zone) of every newsletter's every cadence."""
        with self.db.session() as session:
            return tuple(
                (f"newsletter-{n.id}-{cadence.value}", cron, n.timezone)
                for n in session.scalars(select(Newsletter).order_by(Newsletter.id))
                for cadence, cron in schedules_of(n)
            )

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
        for job_id, cron, timezone in fingerprint:
            self.scheduler.add_job(
                self._serve_slots,
                newsletter_trigger(cron, timezone),
                id=job_id,
                misfire_grace_time=grace,
                coalesce=True,
                max_instances=1,
            )
        log.info("scheduled %d newsletter schedule(s)", len(fingerprint))

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
        self.scheduler.add_job(
            self.refresh_jobs,
            "interval",
            seconds=REFRESH_SECONDS,
            id="refresh",
            max_instances=1,
            coalesce=True,
        )
        await self.refresh_jobs()
        self.scheduler.start()
        try:
            await self._serve_slots()  # catch up with a slot missed while we were down
            while not stop.is_set():
                await _wait(stop, UPKEEP_SECONDS)
                if not await asyncio.to_thread(lock.still_held):
                    log.error("lost the scheduler lock; stopping")
                    break
        finally:
            self.scheduler.shutdown(wait=False)
            lock.release()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
