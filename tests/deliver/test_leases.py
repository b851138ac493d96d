"""Leases: renewed for as long as their holder lives, and every write fenced by them.

Two healthy workers against a slow SMTP server must never send a message twice; a worker
that lost a lease (another took it back) must neither send nor write that delivery.
"""

import asyncio
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.builders import one_off_edition, worker_env
from tests.smtpserver import smtp_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState
from tidings.db.types import utcnow
from tidings.deliver import ledger
from tidings.deliver.runner import make_transports
from tidings.deliver.worker import Worker


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings", "worker", "--drain", "--processes", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _two_workers(
    db: Database, settings: Settings, tmp_path: Path, readers: int, stall: float, pool: int
) -> tuple[Counter[str], list[str], list[str]]:
    """Two `tidings worker --drain` processes started 1.5 s apart on a 5 s lease against a
    server that takes ``stall`` seconds per message; (messages per recipient, logs)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several worker processes share an edition on PostgreSQL only")
    addresses = one_off_edition(db, settings, readers)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = stall
        env = worker_env(
            settings, port, TIDINGS_LEASE_SECONDS="5", TIDINGS_SMTP_POOL_SIZE=str(pool)
        )
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        first = _worker(env, logs[0])
        time.sleep(1.5)
        second = _worker(env, logs[1])
        for process in (first, second):
            process.wait(timeout=120)
        outputs = [log.read_text(errors="replace") for log in logs]
        assert [first.returncode, second.returncode] == [0, 0], outputs
        return Counter(handler.recipients()), addresses, outputs


def test_two_healthy_workers_and_a_slow_server_send_each_message_once(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # The case scaled down: 150 readers, 3 s a message, a 60 s lease, workers 5 s
    # apart gave 176 messages. Here 60 readers, 0.25 s a message, 2 connections each: one
    # worker alone needs 7.5 s, longer than the 5 s lease.
    received, addresses, outputs = _two_workers(
        db, settings, tmp_path, readers=60, stall=0.25, pool=2
    )
    assert set(received) == set(addresses)
    duplicates = sum(n - 1 for n in received.values())
    print(f"two healthy workers, slow server: {duplicates} duplicate(s) for {len(addresses)}")
    assert duplicates == 0, outputs
    assert not any("reclaimed" in output for output in outputs), outputs
    with db.session() as session:
        states = Counter(session.scalars(select(Delivery.state)).all())
    assert states == {DeliveryState.sent: 60}


def test_a_send_longer_than_the_lease_keeps_its_lease(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # Each message takes 6 s, longer than the 5 s lease: only renewals while the worker
    # waits on the server keep the other worker from taking the deliveries back.
    received, addresses, outputs = _two_workers(
        db, settings, tmp_path, readers=6, stall=6.0, pool=2
    )
    assert set(received) == set(addresses)
    assert max(received.values()) == 1, (received, outputs)
    assert not any("reclaimed" in output for output in outputs), outputs


def test_a_result_written_after_the_lease_was_lost_is_dropped(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose lease was taken back (and claimed by another) while its send was
    slow: its late result must not overwrite the newer holder's, and it is counted."""
    addresses = one_off_edition(db, settings, readers=1)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 1.5
        slow = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "smtp_pool_size": 1}
        )

        async def scenario() -> Worker:
            worker = Worker(db, slow, make_transports(slow), name="slow-host:1:aaaaaa")
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: bool(handler.commands))  # the message is on its way
            await asyncio.to_thread(_take_back_and_claim_elsewhere, db)
            await _until(lambda: bool(handler.caught))
            await asyncio.sleep(0.5)  # its result is written behind by now
            stop.set()
            await task
            return worker

        with caplog.at_level(logging.WARNING, logger="tidings.deliver.worker"):
            worker = asyncio.run(scenario())
    assert handler.recipients() == addresses  # it was sent once, by the slow worker
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
    # The newer holder's lease stands: still sending, under its token, not "sent" by the
    # stale holder (nor renewed by it).
    assert (row.state, row.lease_owner) == (DeliveryState.sending, "other-host:9:bbbbbb:1")
    assert worker.stats.dropped == 1
    assert "dropped 1 result(s) whose lease was lost" in caplog.text


async def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _take_back_and_claim_elsewhere(db: Database) -> None:
    """What another worker does once a lease looks expired: reclaim, then claim anew."""
    later = utcnow() + timedelta(hours=1)
    with db.session() as session:
        session.execute(update(Delivery).values(lease_expires_at=utcnow()))
        assert ledger.reclaim_expired(session, later, at_most_once=False) == 1
        claims = ledger.claim_due(session, "other-host:9:bbbbbb:1", 10, timedelta(hours=2), later)
        assert len(claims) == 1
        session.commit()


def test_renewals_and_results_are_fenced_by_the_lease_token(
    db: Database, settings: Settings
) -> None:
    one_off_edition(db, settings, readers=2)
    now = utcnow()
    lease = timedelta(seconds=30)
    with db.session() as session:
        first = ledger.claim_due(session, "w1:1", 1, lease, now)
        session.commit()
    (claim,) = first
    with db.session() as session:  # its lease ran out: taken back and claimed by w2
        later = now + timedelta(minutes=5)
        assert ledger.reclaim_expired(session, later, at_most_once=False) == 1
        second = ledger.claim_due(session, "w2:7", 2, lease, later)
        session.commit()
    assert claim.delivery_id in {c.delivery_id for c in second}
    with db.session() as session:
        renewal = ledger.renew_leases(session, ["w1:1"], lease, later)
        assert renewal.held == frozenset()  # the old holder learns it lost it
        stale = claim.outcome(DeliveryState.failed, 550, "550 late and stale", later)
        recorded = ledger.record_outcomes(session, [stale])
        session.commit()
    assert (recorded.written, recorded.dropped) == (0, (claim.delivery_id,))
    with db.session() as session:
        row = session.get_one(Delivery, claim.delivery_id)
        assert (row.state, row.lease_owner) == (DeliveryState.sending, "w2:7")
        renewal = ledger.renew_leases(session, ["w2:7"], lease, later)
        assert renewal.held == {c.delivery_id for c in second}
        fresh = [c.outcome(DeliveryState.sent, 250, "250 ok", later) for c in second]
        assert ledger.record_outcomes(session, fresh).written == 2
        session.commit()


@pytest.mark.parametrize("change", ["pause", "cancel"])
def test_a_pause_or_cancel_stops_deliveries_already_claimed(
    db: Database, settings: Settings, change: str
) -> None:
    """An editor's pause (or cancel) reaches the deliveries a worker already claimed: they
    are handed back (or cancelled) at the next renewal, not sent."""
    from tidings.compose.lifecycle import EDITION_CHANGES

    one_off_edition(db, settings, readers=60)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.1
        slow = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "smtp_pool_size": 1}
        )

        async def scenario() -> int:
            worker = Worker(db, slow, make_transports(slow))
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: len(handler.caught) >= 3)
            with db.session() as session:
                edition_id = session.scalars(select(Delivery.edition_id)).first()
            assert edition_id is not None
            await asyncio.to_thread(EDITION_CHANGES[change], db, settings, edition_id)
            at_change = len(handler.recipients())
            await asyncio.sleep(4)
            stop.set()
            await task
            return at_change

        at_change = asyncio.run(scenario())
        received = len(handler.recipients())
    # What was in flight, plus at most one renewal interval (2 s at ~10 a second).
    assert received - at_change <= 1 + 25, (at_change, received)
    left = DeliveryState.queued if change == "pause" else DeliveryState.cancelled
    with db.session() as session:
        states = Counter(session.scalars(select(Delivery.state)).all())
    assert states == {DeliveryState.sent: received, left: 60 - received}
