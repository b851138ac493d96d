"""A send pool over real claimed jobs and a real SMTP server, for the pool's tests (and the
limits' tests, with a :class:`~tidings.deliver.pacing.Pacer`)."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import EditionStatus
from tidings.deliver.leases import LeaseBook
from tidings.deliver.ledger import Outcome
from tidings.deliver.pacing import Pacer
from tidings.deliver.policy import RetryPolicy
from tidings.deliver.sending import SendPool
from tidings.deliver.worker_db import Job, WorkerDatabase
from tidings.deliver.writebehind import WorkerStats
from tidings.mail.transport import SmtpConnection, smtp_target


class Pool:
    """A pool of two connections over the claimed jobs, and what it recorded."""

    def __init__(
        self,
        settings: Settings,
        jobs: list[Job],
        *,
        leased: bool = True,
        pacer: Pacer | None = None,
    ) -> None:
        self.jobs = jobs
        self.book = LeaseBook("w", settings.lease_seconds)
        if leased:
            self.book.claimed("w:1", [j.claim.delivery_id for j in jobs], time.monotonic())
        self.stopped: dict[int, EditionStatus] = {}
        self.stats = WorkerStats()
        self.outcomes: list[Outcome] = []
        target = smtp_target(settings)
        self.pool = SendPool(
            [SmtpConnection(target, 5.0) for _ in range(2)],
            RetryPolicy.from_settings(settings),
            self.book,
            self.stopped,
            self.stats,
            self.outcomes.append,
            15.0,
            pacer=pacer,
        )

    def run(
        self, *, start: bool = True, meanwhile: Callable[[], Awaitable[None]] | None = None
    ) -> list[Outcome]:
        """Queue every job, let the pool send them (``meanwhile`` runs beside it), and stop
        it."""

        async def scenario() -> None:
            beside = asyncio.create_task(meanwhile()) if meanwhile is not None else None
            if start:
                self.pool.start()
            for job in self.jobs:
                self.pool.put(job)
            deadline = time.monotonic() + 20
            while start and self.pool.held() and time.monotonic() < deadline:
                await self.pool.wait_for_progress(0.1)
            await self.pool.stop()
            await self.pool.close()
            if beside is not None:
                await beside

        asyncio.run(scenario())
        return sorted(self.outcomes, key=lambda o: o.delivery_id)


def claimed_jobs(db: Database, settings: Settings, readers: int) -> tuple[int, list[Job]]:
    """A sending edition with ``readers`` deliveries, all claimed by "w:1": its id and jobs."""
    made = sending(db, settings, readers)
    prepared = WorkerDatabase(db, settings).claim("w:1", readers)
    assert len(prepared.jobs) == readers
    return made.edition_id, prepared.jobs
