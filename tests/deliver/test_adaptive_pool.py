"""The send pool that adapts its connections, against the real aiosmtpd server: it opens
more while the relay is slow to answer and jobs wait, never more than the cap, and a relay
that greets a connection beyond its limit with 421 shrinks it, without costing any job a
deferral. Counts and states only: nothing here depends on how fast the machine is."""

import asyncio
import time

import pytest

from tests.crowdedsmtp import crowded_server
from tests.deliver.ledgerrows import sending
from tests.smtpserver import RecordingHandler
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState
from tidings.deliver.leases import LeaseBook
from tidings.deliver.ledger import Outcome
from tidings.deliver.policy import RetryPolicy
from tidings.deliver.poolsize import PoolSizer
from tidings.deliver.runner import run_worker
from tidings.deliver.sending import SendPool
from tidings.deliver.worker_db import Job, WorkerDatabase
from tidings.deliver.writebehind import WorkerStats
from tidings.mail.transport import SmtpConnection, SmtpTarget, Transport

#: Each message waits this long for its DATA reply: a relay far away, in effect.
SLOW_REPLY_SECONDS = 0.01


class AdaptivePool:
    """A send pool that starts at ``start`` connections and may grow to ``cap``; records the
    most connections it had at once."""

    def __init__(
        self,
        port: int,
        jobs: list[Job],
        settings: Settings,
        start: int,
        cap: int,
        idle_seconds: float = 30.0,
    ) -> None:
        self.jobs = jobs
        self.book = LeaseBook("w", settings.lease_seconds)
        self.book.claimed("w:1", [j.claim.delivery_id for j in jobs], time.monotonic())
        self.outcomes: list[Outcome] = []
        self.sizer = PoolSizer(start=start, cap=cap)
        self.most = 0
        target = SmtpTarget("127.0.0.1", port, "none", None, None)

        def connect() -> Transport:
            return SmtpConnection(target, 5.0)

        self.pool = SendPool(
            [connect() for _ in range(self.sizer.size)],
            RetryPolicy.from_settings(settings),
            self.book,
            {},
            WorkerStats(),
            self.outcomes.append,
            15.0,
            connect=connect,
            sizer=self.sizer,
            idle_seconds=idle_seconds,
        )
        #: Connections once every job was done and the pool had been idle a while.
        self.rested: int | None = None

    def run(self, rest: float = 0.0) -> list[Outcome]:
        """Send every job; then, with ``rest``, wait up to that long for the pool to come
        back to its starting size, and note its size."""

        async def scenario() -> None:
            self.pool.start()
            for job in self.jobs:
                self.pool.put(job)
            deadline = time.monotonic() + 60
            while self.pool.held() and time.monotonic() < deadline:
                self.most = max(self.most, self.pool.connections())
                await self.pool.wait_for_progress(0.1)
            deadline = time.monotonic() + rest
            while self.pool.connections() > self.sizer.start and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self.rested = self.pool.connections()
            await self.pool.stop()
            await self.pool.close()

        asyncio.run(scenario())
        return self.outcomes


def _jobs(db: Database, settings: Settings, readers: int) -> list[Job]:
    sending(db, settings, readers)
    jobs = WorkerDatabase(db, settings).claim("w:1", readers).jobs
    assert len(jobs) == readers
    return jobs


def _slow(handler: RecordingHandler) -> RecordingHandler:
    handler.behaviour.stall_seconds = SLOW_REPLY_SECONDS
    return handler


def _all_sent_once(outcomes: list[Outcome], jobs: list[Job], handler: RecordingHandler) -> None:
    assert sorted(o.delivery_id for o in outcomes) == sorted(j.claim.delivery_id for j in jobs)
    assert {o.state for o in outcomes} == {DeliveryState.sent}
    assert sorted(handler.recipients()) == sorted(j.recipient.email for j in jobs)


def test_the_pool_grows_while_jobs_wait_on_a_slow_relay(db: Database, settings: Settings) -> None:
    jobs = _jobs(db, settings, readers=120)
    with crowded_server(limit=100) as (handler, crowd, port):
        pool = AdaptivePool(port, jobs, settings, start=2, cap=30)
        _slow(handler)
        outcomes = pool.run()
    _all_sent_once(outcomes, jobs, handler)
    assert pool.most > 2  # the first step is taken whenever jobs wait
    assert crowd.refused == 0
    assert pool.pool.connections() == 0  # all closed


@pytest.mark.parametrize("cap", [1, 3])
def test_the_pool_never_exceeds_its_cap(db: Database, settings: Settings, cap: int) -> None:
    jobs = _jobs(db, settings, readers=60)
    with crowded_server(limit=100) as (handler, crowd, port):
        pool = AdaptivePool(port, jobs, settings, start=1, cap=cap)
        _slow(handler)
        outcomes = pool.run()
    _all_sent_once(outcomes, jobs, handler)
    assert pool.most <= cap
    assert crowd.peak <= cap
    assert pool.sizer.size <= cap


def test_a_421_greeting_shrinks_the_pool_and_costs_no_job_a_deferral(
    db: Database, settings: Settings
) -> None:
    jobs = _jobs(db, settings, readers=80)
    with crowded_server(limit=2) as (handler, crowd, port):
        # Four connections to a relay that takes two: two are refused at the greeting.
        pool = AdaptivePool(port, jobs, settings, start=4, cap=10)
        _slow(handler)
        outcomes = pool.run()
        refused = crowd.refused
    _all_sent_once(outcomes, jobs, handler)
    assert refused >= 2
    assert crowd.peak <= 2
    assert pool.sizer.size == 2  # what worked is the size, and the ceiling for a while


def test_the_last_connection_records_the_refusal(db: Database, settings: Settings) -> None:
    """A relay that refuses every connection: one connection stays and defers each job,
    as a fixed pool does."""
    jobs = _jobs(db, settings, readers=3)
    with crowded_server(limit=0) as (handler, crowd, port):
        pool = AdaptivePool(port, jobs, settings, start=3, cap=10)
        outcomes = pool.run()
    assert sorted(o.delivery_id for o in outcomes) == sorted(j.claim.delivery_id for j in jobs)
    assert {o.state for o in outcomes} == {DeliveryState.deferred}
    assert {o.code for o in outcomes} == {421}
    assert handler.recipients() == []
    assert pool.sizer.size == 1
    assert crowd.refused >= 3


def test_a_draining_worker_grows_within_the_relays_limit(db: Database, settings: Settings) -> None:
    """``tidings worker``'s own pool (run_worker): it starts at the pool size, opens more
    while the relay is slow, and keeps to what the relay accepts; each reader gets one copy."""
    made = sending(db, settings, readers=150)
    with crowded_server(limit=5) as (handler, crowd, port):
        _slow(handler)
        relay = settings.model_copy(
            update={
                "smtp_url": f"smtp://127.0.0.1:{port}",
                "smtp_pool_size": 2,
                "smtp_max_connections": 8,
            }
        )
        stats = asyncio.run(run_worker(db, relay, drain=True, stop=asyncio.Event()))
        peak = crowd.peak
    assert stats.sent == 150 and stats.deferred == 0
    assert sorted(handler.recipients()) == sorted(made.ids)
    assert 2 < peak <= 5


def test_connections_beyond_the_start_leave_when_idle(db: Database, settings: Settings) -> None:
    jobs = _jobs(db, settings, readers=80)
    with crowded_server(limit=100) as (handler, crowd, port):
        pool = AdaptivePool(port, jobs, settings, start=1, cap=12, idle_seconds=0.2)
        _slow(handler)
        outcomes = pool.run(rest=10)
    _all_sent_once(outcomes, jobs, handler)
    assert pool.most > 1
    assert pool.rested == 1
    assert pool.sizer.size == 1
    assert crowd.refused == 0
