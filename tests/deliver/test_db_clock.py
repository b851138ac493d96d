"""Delivery leases and worker heartbeats on the database's clock: a host whose clock is ten
minutes off neither takes back another worker's live lease (its message would go twice), nor
keeps a dead holder's lease, nor looks dead (or alive for ever) to the readers of the
heartbeats (/readyz, the console, ``digest send``).

A skewed host is this process with one module's ``utcnow`` moved by pytest's monkeypatch;
the database's clock (:mod:`tidings.deliver.dbclock`) is never moved. On SQLite, which one
host serves, the database's clock is this host's: the tests run there too, and show the
same thing (each module asks the clock module, never its own ``utcnow``)."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from sqlalchemy import select, update

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState
from tidings.deliver import heartbeats, upkeep, worker_db
from tidings.deliver.dbclock import DbClock, db_time
from tidings.deliver.heartbeats import Beater, Heartbeat, Measure, alive, beat, roll_call
from tidings.deliver.ledger.results import DEFAULT_SCORE
from tidings.deliver.upkeep import run_upkeep
from tidings.deliver.worker_db import WorkerDatabase

SKEW = timedelta(minutes=10)


def _clock(off_by: timedelta) -> Callable[[], datetime]:
    """A host's clock that is ``off_by`` ahead of the true time (behind when negative)."""
    return lambda: datetime.now(UTC) + off_by


def _skew(patch: pytest.MonkeyPatch, module: ModuleType, off_by: timedelta) -> None:
    """This host's clock, as ``module`` reads it, ``off_by`` from the true time. A module
    that no longer reads a clock of its own (it asks the database's) gets one it never
    reads, so the test still stands if it ever reads one again."""
    patch.setattr(module, "utcnow", _clock(off_by), raising=False)


def _holders(db: Database, edition_id: int) -> dict[int, tuple[DeliveryState, str | None]]:
    """Each delivery's state and lease holder, by delivery id."""
    with db.session() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.state, Delivery.lease_owner).where(
                Delivery.edition_id == edition_id
            )
        )
        return {delivery_id: (state, owner) for delivery_id, state, owner in rows}


def _database_now(db: Database) -> datetime:
    with db.session() as session:
        return db_time(session)


def test_a_host_ten_minutes_ahead_takes_back_no_live_lease(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = sending(db, settings, readers=2)
    holder = WorkerDatabase(db, settings)  # a worker with a true clock
    prepared = holder.claim("w:1", 10)
    assert len(prepared.jobs) == 2
    held = {d: (DeliveryState.sending, "w:1") for d in _holders(db, made.edition_id)}

    _skew(monkeypatch, upkeep, SKEW)  # another host, ten minutes ahead
    WorkerDatabase(db, settings).upkeep()  # its worker's upkeep
    assert _holders(db, made.edition_id) == held
    # The scheduler on that host gives its own clock to the upkeep.
    assert run_upkeep(db, False, DEFAULT_SCORE, _clock(SKEW)()).reclaimed == 0
    assert _holders(db, made.edition_id) == held
    assert holder.renew(["w:1"]).held == set(held)  # the holder still holds them all


def test_a_worker_ten_minutes_behind_claims_and_renews_leases_that_stay_live(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = sending(db, settings, readers=2)
    with db.session() as session:  # due an hour ago: even a late clock finds them due
        session.execute(
            update(Delivery).values(next_attempt_at=datetime.now(UTC) - timedelta(hours=1))
        )
        session.commit()
    _skew(monkeypatch, worker_db, -SKEW)
    late = WorkerDatabase(db, settings)
    assert len(late.claim("late:1", 10).jobs) == 2
    held = {d: (DeliveryState.sending, "late:1") for d in _holders(db, made.edition_id)}

    # Upkeep on a host with a true clock (the scheduler's and the worker's own path).
    assert run_upkeep(db, False, DEFAULT_SCORE).reclaimed == 0
    assert _holders(db, made.edition_id) == held
    assert late.renew(["late:1"]).held == set(held)
    assert run_upkeep(db, False, DEFAULT_SCORE, datetime.now(UTC)).reclaimed == 0
    assert _holders(db, made.edition_id) == held
    with db.session() as session:
        expiries = session.scalars(select(Delivery.lease_expires_at)).all()
    lease = timedelta(seconds=settings.lease_seconds)
    assert all(e is not None and e > _database_now(db) + lease / 2 for e in expiries)


def test_a_dead_holders_lease_is_taken_back_by_a_host_ten_minutes_behind(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = sending(db, settings, readers=1)
    WorkerDatabase(db, settings).claim("dead:1", 10)
    with db.session() as session:  # its holder stopped renewing: expired a second ago
        expired = db_time(session) - timedelta(seconds=1)
        session.execute(update(Delivery).values(lease_expires_at=expired))
        session.commit()
    _skew(monkeypatch, upkeep, -SKEW)
    assert run_upkeep(db, False, DEFAULT_SCORE).reclaimed == 1
    assert list(_holders(db, made.edition_id).values()) == [(DeliveryState.queued, None)]


def _names(found: list[Heartbeat]) -> list[str]:
    return [h.name for h in found]


def test_a_worker_ten_minutes_behind_is_alive_to_readers_of_any_clock(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    beater = Beater(db, "late", lambda: Measure(1.0, 0))
    with monkeypatch.context() as late:
        _skew(late, heartbeats, -SKEW)
        assert asyncio.run(beater.beat_once())
    assert _names(alive(db)) == ["late"]  # a reader with a true clock
    roll = roll_call(db)
    assert (_names(roll.alive), roll.silent) == (["late"], [])
    with monkeypatch.context() as ahead:
        _skew(ahead, heartbeats, SKEW)  # a reader ten minutes ahead
        assert _names(alive(db)) == ["late"]
        assert _names(roll_call(db).alive) == ["late"]


def test_a_worker_that_stopped_beating_is_dead_on_the_databases_clock(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _database_now(db)
    last = now - heartbeats.stale_after() - timedelta(seconds=1)  # its last beat: too old
    beat(db, Heartbeat("stopped", "host-a", 4242, now - timedelta(minutes=5), last, 0.0, 0))
    assert alive(db) == []
    with monkeypatch.context() as behind:
        _skew(behind, heartbeats, -SKEW)  # a reader ten minutes behind
        assert alive(db) == []
        roll = roll_call(db)
        assert (roll.alive, _names(roll.silent)) == ([], ["stopped"])


def test_a_db_clock_adds_the_offset_it_last_saw_to_its_host_clock() -> None:
    host = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    clock = DbClock(lambda: host)
    assert clock.now() == host  # nothing learnt: the host's clock
    database = host - SKEW
    assert clock.observe(database) == database
    assert clock.now() == database
    assert clock.of_host(host + timedelta(seconds=30)) == database + timedelta(seconds=30)
    clock.observe(host + SKEW)  # the last read counts
    assert clock.now() == host + SKEW


def test_a_workers_claims_and_renewals_teach_its_clock_the_databases_time(
    db: Database, settings: Settings
) -> None:
    # Between its reads of the database's time, a worker whose host is ten minutes off tells
    # the database's time within far less than that (off only by a statement's round trip).
    near = SKEW / 10
    sending(db, settings, readers=1)
    for off_by in (SKEW, -SKEW):
        clock = DbClock(_clock(off_by))
        worker = WorkerDatabase(db, settings, clock)
        assert len(worker.claim("w:1", 1).jobs) == 1
        before = _database_now(db)
        seen = clock.now()
        assert before - near <= seen <= _database_now(db)
        clock.offset = timedelta(0)  # forgotten; a renewal learns it again
        assert len(worker.renew(["w:1"]).held) == 1
        before = _database_now(db)
        seen = clock.now()
        assert before - near <= seen <= _database_now(db)
        with db.session() as session:
            session.execute(update(Delivery).values(state=DeliveryState.queued))
            session.commit()
