"""``tidings run`` keeps each part on its own: one that crashes is logged and started again,
and never takes the scheduler down with it."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.cli.processes import supervise
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, EditionStatus
from tidings.schedule.scheduler import TidingsScheduler


class CrashesOnce:
    """A part whose first start fails (as a worker whose SMTP set-up throws would), and
    whose second runs until told to stop."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.starts = 0

    async def __call__(self) -> None:
        self.starts += 1
        if self.starts == 1:
            raise RuntimeError("the first start fails")
        await self.stop.wait()


def test_a_crashing_part_is_restarted_and_the_scheduler_goes_on(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    newsletter(db, schedule="0 * * * *", timezone="UTC")
    now = datetime.now(UTC)
    articles(db, "daily", 1, now - timedelta(hours=3), seen=now - timedelta(minutes=90))
    subscribers(db, "daily", 1)

    async def run() -> tuple[int, int, int]:
        stop = asyncio.Event()
        crashing = CrashesOnce(stop)
        parts = asyncio.gather(
            supervise("the worker", crashing, stop, pause=0.1),
            supervise("the scheduler", lambda: TidingsScheduler(db, settings).run(stop), stop),
        )
        for _ in range(200):
            await asyncio.sleep(0.05)
            with db.session() as session:
                if crashing.starts == 2 and session.scalar(select(Edition.id)):
                    break
        stop.set()
        worker_restarts, scheduler_restarts = await asyncio.wait_for(parts, timeout=10)
        return crashing.starts, worker_restarts, scheduler_restarts

    caplog.set_level(logging.ERROR)
    assert asyncio.run(run()) == (2, 1, 0)
    supervised = [r.getMessage() for r in caplog.records if r.name == "tidings.cli.processes"]
    assert supervised == ["the worker stopped with an error; starting it again in 0 s"]
    with db.session() as session:
        assert session.scalars(select(Edition.status)).all() == [EditionStatus.sending]


def test_a_part_that_returns_by_itself_is_started_again() -> None:
    async def run() -> tuple[int, int]:
        stop = asyncio.Event()
        starts = 0

        async def part() -> None:
            nonlocal starts
            starts += 1
            if starts == 3:
                stop.set()

        restarts = await asyncio.wait_for(supervise("a part", part, stop, pause=0.01), 5)
        return starts, restarts

    assert asyncio.run(run()) == (3, 2)
