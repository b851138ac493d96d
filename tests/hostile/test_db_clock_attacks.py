"""Hostile review of the database-clock change (leases and heartbeats on the database's
time, commits a121a1d, aed848d, 1d5b734).

The promise: a host whose clock is minutes off never takes back a live lease, never keeps a
dead worker's lease for ever, never looks dead while it beats, and a dead worker is seen
dead. A skewed host is this process with modules' ``utcnow`` moved by pytest's monkeypatch
(the database's clock, :mod:`tidings.deliver.dbclock`, is never moved). Every check orders
times (before / after a call, read from the database), never measures how long anything
took. A defect found was a strict xfail until fixed; an attack that held is a plain test.
The two defects found (the send pool's due times on its host's clock) are fixed: the pool
stamps them with its worker's :class:`~tidings.deliver.dbclock.DbClock`, whose host clock
is skewed here too and which learnt the database's time at the claim.
"""

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update

from tests.deliver.ledgerrows import sending
from tests.deliver.sendpool import Pool
from tests.deliver.test_db_clock import SKEW, _clock, _database_now, _skew
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.config import Settings
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, SendLimitScope, WorkerHeartbeat
from tidings.deliver import heartbeats, limitadmin, limitkeys, limitslots, pacing, upkeep, worker_db
from tidings.deliver import sending as sending_module
from tidings.deliver.dbclock import DbClock, db_time
from tidings.deliver.heartbeats import Beater, Measure, alive, roll_call
from tidings.deliver.ledger import claims, closing
from tidings.deliver.ledger.results import DEFAULT_SCORE
from tidings.deliver.pacing import Pacer
from tidings.deliver.upkeep import run_upkeep
from tidings.deliver.worker_db import Job, WorkerDatabase

#: Every module of the sending side that reads (or once read) this host's clock: a whole
#: host whose clock is off, not one module.
HOST_MODULES = (heartbeats, sending_module, upkeep, worker_db, claims, closing)


@pytest.fixture
def relay(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def _whole_host(patch: pytest.MonkeyPatch, off_by: timedelta) -> None:
    for module in HOST_MODULES:
        _skew(patch, module, off_by)


def _expiries(db: Database) -> list[datetime]:
    with db.session() as session:
        found = session.scalars(select(Delivery.lease_expires_at).order_by(Delivery.id)).all()
    assert all(e is not None for e in found)
    return [e for e in found if e is not None]


def _claimable(db: Database, settings: Settings) -> int:
    """How many deliveries a worker with a true clock can claim now."""
    return len(WorkerDatabase(db, settings).claim("other:1", 100).jobs)


def _skewed_claim(
    db: Database, settings: Settings, readers: int, off_by: timedelta
) -> tuple[DbClock, list[Job]]:
    """Deliveries claimed as "w:1" by a worker whose host clock is ``off_by`` from the true
    time: its clock (which learnt the database's time at the claim) and its jobs."""
    sending(db, settings, readers)
    store = WorkerDatabase(db, settings, DbClock(_clock(off_by)))
    jobs = store.claim("w:1", readers).jobs
    assert len(jobs) == readers
    return store.clock, jobs


def _skewed_pool(
    settings: Settings, jobs: list[Job], clock: DbClock, leased: bool, pacer: Pacer | None = None
) -> Pool:
    """A send pool of the worker that claimed ``jobs``, on that worker's clock."""
    pool = Pool(settings, jobs, leased=leased, pacer=pacer)
    pool.pool.clock = clock
    return pool


# --- Defects -----------------------------------------------------------------------------


# Was a defect (fixed): the send pool (deliver/sending.py) stamped handed-back deliveries'
# next_attempt_at with its host's utcnow(): a worker whose clock ran 10 minutes ahead
# released deliveries it could not start (lease not renewed in time, or the worker
# stopping) 'due at once' 10 minutes in the database's future, so no worker could claim
# them (and nothing counted as due) for 10 minutes.
@pytest.mark.parametrize("why", ["lease not renewed", "worker stopping"])
def test_deliveries_handed_back_by_a_host_ahead_are_due_at_once_for_others(
    db: Database,
    relay: tuple[RecordingHandler, Settings],
    monkeypatch: pytest.MonkeyPatch,
    why: str,
) -> None:
    handler, settings = relay
    clock, jobs = _skewed_claim(db, settings, 2, SKEW)
    _whole_host(monkeypatch, SKEW)  # the claiming worker's host runs ten minutes ahead
    if why == "lease not renewed":  # no renewal vouched for the lease: both handed back
        outcomes = _skewed_pool(settings, jobs, clock, leased=False).run()
    else:  # queued, and the worker stops before a connection took them
        outcomes = _skewed_pool(settings, jobs, clock, leased=True).run(start=False)
    assert [o.state for o in outcomes] == [DeliveryState.queued] * 2
    WorkerDatabase(db, settings).write(outcomes, ())
    assert handler.recipients() == []
    monkeypatch.undo()
    assert heartbeats.sending_is_due(db)  # released "due at once": due on the shared clock
    assert _claimable(db, settings) == 2


# Was a defect (fixed): a deferral's retry time (sending.py _judged: policy.next_attempt(...,
# utcnow())) was the host's clock plus the wait: a worker whose clock lagged 10 minutes
# deferred a 451 by retry_first_seconds (300 s) into the database's past, so the message
# was claimed and tried again at once instead of 5 minutes later.
def test_a_deferral_by_a_host_behind_waits_its_retry_time(
    db: Database, relay: tuple[RecordingHandler, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, settings = relay
    assert settings.retry_first_seconds * 2 <= SKEW.total_seconds()
    clock, jobs = _skewed_claim(db, settings, 1, -SKEW)
    handler.behaviour.rcpt_replies[jobs[0].recipient.email] = "451 4.7.1 try again later"
    _whole_host(monkeypatch, -SKEW)  # the sending worker's host lags ten minutes
    outcomes = _skewed_pool(settings, jobs, clock, leased=True).run()
    assert [o.state for o in outcomes] == [DeliveryState.deferred]
    WorkerDatabase(db, settings).write(outcomes, ())
    monkeypatch.undo()
    before = _database_now(db)
    with db.session() as session:
        retry_at = session.scalar(select(Delivery.next_attempt_at))
    assert retry_at is not None
    assert retry_at >= before + timedelta(seconds=settings.retry_first_seconds / 2)
    assert _claimable(db, settings) == 0


# --- Attacks that held -------------------------------------------------------------------


def test_a_whole_host_ahead_takes_back_no_live_lease_and_a_late_one_keeps_none(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held: every module of the host skewed at once (not one at a time as the change's own
    # tests do), running both the worker's upkeep and the scheduler's with its own time.
    sending(db, settings, readers=2)
    holder = WorkerDatabase(db, settings)
    assert len(holder.claim("w:1", 10).jobs) == 2
    with monkeypatch.context() as ahead:
        _whole_host(ahead, SKEW)
        WorkerDatabase(db, settings).upkeep()
        assert run_upkeep(db, False, DEFAULT_SCORE, _clock(SKEW)()).reclaimed == 0
    assert len(holder.renew(["w:1"]).held) == 2
    with db.session() as session:
        owners = session.scalars(select(Delivery.lease_owner)).all()
    assert owners == ["w:1", "w:1"]
    # The holder dies: its leases run out on the database's clock; a host that lags ten
    # minutes still takes them back (nothing is held for ever).
    with db.session() as session:
        expired = db_time(session) - timedelta(seconds=1)
        session.execute(update(Delivery).values(lease_expires_at=expired))
        session.commit()
    with monkeypatch.context() as behind:
        _whole_host(behind, -SKEW)
        assert WorkerDatabase(db, settings).upkeep()  # work is due again
    with db.session() as session:
        states = session.scalars(select(Delivery.state)).all()
    assert states == [DeliveryState.queued] * 2


def test_claims_and_renewals_stamp_the_database_time_of_their_own_transaction(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held: PostgreSQL's now() is the transaction's start, but WorkerDatabase reads it as
    # the first statement of the claim's and of the renewal's own transaction: each lease
    # runs a full lease from a time between the database's clock read before and after the
    # call, on a host ahead or behind (a stale transaction would stamp it before ``before``).
    sending(db, settings, readers=2)
    lease = timedelta(seconds=settings.lease_seconds)
    for off_by in (SKEW, -SKEW):
        with db.session() as session:
            session.execute(update(Delivery).values(state=DeliveryState.queued))
            session.commit()
        with monkeypatch.context() as host:
            _whole_host(host, off_by)
            worker = WorkerDatabase(db, settings)
            before = _database_now(db)
            assert len(worker.claim(f"w{off_by.days}:1", 10).jobs) == 2
            after = _database_now(db)
            assert all(before + lease <= e <= after + lease for e in _expiries(db))
            before = _database_now(db)
            assert len(worker.renew([f"w{off_by.days}:1"]).held) == 2
            after = _database_now(db)
            assert all(before + lease <= e <= after + lease for e in _expiries(db))


def test_a_beat_is_stamped_between_the_database_times_around_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held: a worker lagging ten minutes stamps its beat (and its start) with the database's
    # time, so a reader ahead, or one given the same instant in another time zone, sees it.
    beater = Beater(db, "lagging", lambda: Measure(0.0, 0))
    before = _database_now(db)
    with monkeypatch.context() as behind:
        _whole_host(behind, -SKEW)
        assert asyncio.run(beater.beat_once())
    after = _database_now(db)
    with db.session() as session:
        row = session.scalars(select(WorkerHeartbeat)).one()
    assert before <= row.last_beat_at <= after
    assert row.started_at == row.last_beat_at
    elsewhere = after.astimezone(timezone(timedelta(hours=-9, minutes=-30)))
    assert [h.name for h in alive(db, elsewhere)] == ["lagging"]
    with monkeypatch.context() as ahead:
        _whole_host(ahead, SKEW)
        roll = roll_call(db)
    assert [h.name for h in roll.alive] == ["lagging"]
    assert roll.now >= row.last_beat_at
    # Stopped beating: once stale_after has passed on the database's clock, it is dead to a
    # reader lagging ten minutes (given the database's time moved on).
    later = row.last_beat_at + heartbeats.stale_after() + timedelta(seconds=1)
    assert alive(db, later) == []
    assert [h.name for h in roll_call(db, later).silent] == ["lagging"]


def test_a_postgres_session_in_another_time_zone_stamps_the_same_instants(
    db: Database, settings: Settings
) -> None:
    # Held: the lease columns are timestamptz and db_time turns now() into UTC, so a
    # connection whose TimeZone is far from UTC neither shortens nor stretches a lease.
    with db.session() as session:
        if not is_postgres(session):
            pytest.skip("a session time zone is PostgreSQL's")
    sending(db, settings, readers=1)
    lease = timedelta(seconds=settings.lease_seconds)
    before = _database_now(db)
    with db.session() as session:
        session.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
        now = db_time(session)
        assert now.utcoffset() == timedelta(0)
        assert len(claims.claim_due(session, "tz:1", 5, lease)) == 1
        expiry = session.scalar(select(Delivery.lease_expires_at))
        session.commit()
    after = _database_now(db)
    assert before <= now <= after
    assert expiry == now + lease


def test_a_host_days_ahead_forgets_no_worker_that_beats(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held: a starting worker clears rows silent for over a day (forget_silent) on the
    # database's clock: one whose host runs two days ahead deletes no live worker's row, and
    # the live worker stays alive to every reader.
    beater = Beater(db, "beating", lambda: Measure(0.0, 0))
    assert asyncio.run(beater.beat_once())
    with monkeypatch.context() as ahead:
        _whole_host(ahead, heartbeats.KEEP_SILENT * 2)
        assert heartbeats.forget_silent(db) == 0
        assert [h.name for h in alive(db)] == ["beating"]
    # Given a database time past a day of silence, the same row does go.
    later = _database_now(db) + heartbeats.KEEP_SILENT + timedelta(seconds=1)
    assert heartbeats.forget_silent(db, later) == 1


def test_a_paced_job_handed_back_by_a_host_ahead_is_due_on_the_databases_clock(
    db: Database, relay: tuple[RecordingHandler, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pacer tells a busy domain's job to come back BUSY_RETRY_SECONDS later on its host's
    # clock; the pool writes that due time on the database's, not 10 minutes in its future.
    handler, settings = relay
    clock, jobs = _skewed_claim(db, settings, 1, SKEW)
    domain = limitkeys.domain_name(jobs[0].recipient.email)
    limitadmin.set_limit(db, "domain", domain, per_second=None, connections=1)
    key = limitkeys.Key(SendLimitScope.domain, domain)
    with db.session() as session:  # a worker elsewhere holds the domain's one connection
        assert limitslots.take_slot(session, key, "elsewhere", timedelta(hours=1)) == 0
        session.commit()
    _whole_host(monkeypatch, SKEW)
    lease = timedelta(seconds=settings.lease_seconds)
    ahead = SKEW.total_seconds()
    pacer = Pacer(db, "w", None, lease, clock=lambda: time.time() + ahead)
    pool = _skewed_pool(settings, jobs, clock, leased=True, pacer=pacer)
    before = _database_now(db)
    outcomes = pool.run()
    after = _database_now(db)
    assert [o.state for o in outcomes] == [DeliveryState.queued]
    assert handler.recipients() == []
    due = outcomes[0].next_attempt_at
    assert due is not None
    busy = timedelta(seconds=pacing.BUSY_RETRY_SECONDS)
    assert before <= due <= after + busy
