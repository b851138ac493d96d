"""Results written behind: counted, flushed once enough wait (or on demand), settled in the
lease book, dropped when their lease was lost, kept when the database cannot take them, and
a mass refusal in them pauses the edition for the worker."""

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, event
from sqlalchemy.exc import OperationalError

from tests.deliver.ledgerrows import sending, states
from tidings.config import Settings
from tidings.db.engine import Database, make_engine, make_session_factory
from tidings.db.models import DeliveryState, EditionStatus
from tidings.deliver.leases import LeaseBook
from tidings.deliver.ledger import Outcome
from tidings.deliver.worker_db import Job, WorkerDatabase
from tidings.deliver.writebehind import FLUSH_AT, WorkerStats, WriteBehind


class Writer:
    def __init__(self, db: Database, settings: Settings, jobs: list[Job], every: float) -> None:
        self.book = LeaseBook("w", settings.lease_seconds)
        self.book.claimed("w:1", [j.claim.delivery_id for j in jobs], time.monotonic())
        self.stats = WorkerStats()
        self.stopped: dict[int, EditionStatus] = {}
        store = WorkerDatabase(db, settings)
        self.writer = WriteBehind(store, asyncio.Lock(), self.book, self.stats, self.stopped, every)


def _jobs(db: Database, settings: Settings, readers: int) -> tuple[int, list[Job]]:
    made = sending(db, settings, readers)
    return made.edition_id, WorkerDatabase(db, settings).claim("w:1", readers).jobs


def _sent(job: Job) -> Outcome:
    return job.claim.outcome(DeliveryState.sent, 250, "ok", datetime.now(UTC))


def test_results_are_counted_and_written_once_enough_wait(db: Database, settings: Settings) -> None:
    edition_id, jobs = _jobs(db, settings, readers=FLUSH_AT + 1)
    writer = Writer(db, settings, jobs, every=60)  # only FLUSH_AT can make it write soon

    def written() -> int:
        return sum(s == DeliveryState.sent for s in states(db, edition_id).values())

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(writer.writer.run())
        for job in jobs[: FLUSH_AT - 1]:
            writer.writer.record(_sent(job))
        await asyncio.sleep(0.5)
        before = written()
        writer.writer.record(_sent(jobs[FLUSH_AT - 1]))
        deadline = time.monotonic() + 10
        while written() < FLUSH_AT and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        return before, written()

    before, after = asyncio.run(scenario())
    assert (before, after) == (0, FLUSH_AT)  # 19 waiting: nothing written; 20: written
    assert writer.stats.sent == FLUSH_AT


def test_a_flush_settles_the_leases_and_drops_results_of_lost_ones(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    edition_id, jobs = _jobs(db, settings, readers=2)
    writer = Writer(db, settings, jobs, every=60)
    kept, lost = jobs
    stale = Outcome(**{**_sent(lost).__dict__, "lease_token": "w:0"})  # not our token
    writer.writer.record(_sent(kept))
    writer.writer.record(stale)
    asyncio.run(writer.writer.flush())
    assert writer.stats.dropped == 1 and writer.stats.sent == 2
    assert f"dropped 1 result(s) whose lease was lost (deliveries {lost.claim.delivery_id})" in (
        caplog.text
    )
    assert states(db, edition_id)[kept.recipient.subscriber_id] == DeliveryState.sent
    assert writer.book.tokens() == ["w:1"]  # the lost one is still pending under w:1
    asyncio.run(writer.writer.flush())  # nothing left: nothing happens
    assert writer.stats.dropped == 1


def test_a_mass_refusal_pauses_the_edition_for_the_worker(db: Database, settings: Settings) -> None:
    edition_id, jobs = _jobs(db, settings, readers=25)
    writer = Writer(db, settings, jobs, every=60)
    now = datetime.now(UTC)
    for job in jobs:
        refusal = "550 5.7.1 relay access denied"
        writer.writer.record(job.claim.outcome(DeliveryState.failed, 550, refusal, now))
    asyncio.run(writer.writer.flush())
    assert writer.stopped == {edition_id: EditionStatus.paused}
    assert set(states(db, edition_id).values()) == {DeliveryState.queued}  # held for later


@pytest.fixture
def impatient(db: Database, settings: Settings) -> Iterator[Database]:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        engine = make_engine(url)

        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=50")

    else:
        engine = make_engine(url, connect_args={"options": "-c lock_timeout=50"})
    yield Database(engine=engine, sessions=make_session_factory(engine))
    engine.dispose()


def _lock_deliveries(db: Database) -> Connection:
    blocker = db.engine.connect()
    if db.engine.dialect.name == "sqlite":
        blocker.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        blocker.begin()
        blocker.exec_driver_sql("LOCK TABLE deliveries IN EXCLUSIVE MODE")
    return blocker


def test_results_the_database_did_not_take_are_kept_for_the_next_flush(
    db: Database, impatient: Database, settings: Settings
) -> None:
    edition_id, jobs = _jobs(db, settings, readers=2)
    writer = Writer(impatient, settings, jobs, every=60)
    for job in jobs:
        writer.writer.record(_sent(job))
    blocker = _lock_deliveries(db)
    try:
        with pytest.raises(OperationalError):
            asyncio.run(writer.writer.flush())
    finally:
        blocker.rollback()
        blocker.close()
    assert set(states(db, edition_id).values()) == {DeliveryState.sending}
    assert writer.book.tokens() == ["w:1"]
    asyncio.run(writer.writer.flush())
    assert set(states(db, edition_id).values()) == {DeliveryState.sent}
    assert writer.book.tokens() == []
