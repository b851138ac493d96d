"""Worker processes sharing one PostgreSQL edition, and a worker killed mid-edition."""

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.builders import articles, newsletter, worker_env
from tests.smtpserver import smtp_server
from tidings.audience.imports.importer import import_subscribers
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState
from tidings.db.types import utcnow
from tidings.deliver.writebehind import UNWRITTEN_LIMIT


def _edition(db: Database, settings: Settings, tmp_path: Path, readers: int) -> set[str]:
    newsletter(db)
    ids = articles(db, "daily", 5, utcnow())
    csv_path = tmp_path / "readers.csv"
    addresses = [f"reader{i}@example{i % 7}.ge" for i in range(readers)]
    csv_path.write_text(
        "email,name\n" + "".join(f"{a},Reader {i}\n" for i, a in enumerate(addresses))
    )
    import_subscribers(db, "daily", csv_path, confirmed=True, batch_size=10_000)
    result = send_one_off(db, settings, "daily", OneOff(article_ids=ids))
    assert result.deliveries == readers
    return set(addresses)


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Output goes to a file: a pipe nobody reads yet could fill up and stall the worker.
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings", "worker", "--drain", "--processes", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _finish(worker: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    worker.wait(timeout=timeout)
    return log.read_text(encoding="utf-8", errors="replace")


#: The connections of the tests' workers (worker_env keeps the pool at its starting four).
POOL = 4


def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several worker processes share an edition on PostgreSQL only")


def test_three_workers_share_an_edition_of_20000_exactly_once(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _postgres_only(db)
    addresses = _edition(db, settings, tmp_path, readers=20_000)
    with smtp_server() as (handler, port):
        env = worker_env(settings, port)
        logs = [tmp_path / f"worker{i}.log" for i in range(3)]
        workers = [_start(env, log) for log in logs]
        outputs = [_finish(w, log, 600) for w, log in zip(workers, logs, strict=True)]
        assert [w.returncode for w in workers] == [0, 0, 0], outputs
        received = Counter(handler.recipients())
    assert set(received) == addresses
    assert max(received.values()) == 1
    sent_per_worker = [int(o.rsplit("sent ", 1)[1].split(",")[0]) for o in outputs]
    assert sum(sent_per_worker) == 20_000
    assert all(count > 0 for count in sent_per_worker), sent_per_worker  # all three shared it
    with db.session() as session:
        states = dict(
            session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
    assert states == {DeliveryState.sent: 20_000}


def test_sigkill_mid_edition_loses_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _postgres_only(db)
    addresses = _edition(db, settings, tmp_path, readers=3_000)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.003  # slow enough to kill it half-way
        env = worker_env(settings, port, TIDINGS_LEASE_SECONDS="5")
        victim = _start(env, tmp_path / "victim.log")
        deadline = time.monotonic() + 120
        while not handler.recipients() and time.monotonic() < deadline:
            time.sleep(0.005)
        first_at = time.monotonic()
        while len(handler.recipients()) < 1_000 and time.monotonic() < deadline:
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        rate = len(handler.recipients()) / max(time.monotonic() - first_at, 0.001)
        victim.wait(timeout=10)
        delivered_before = len(handler.recipients())
        assert delivered_before < 3_000, "the worker finished before it could be killed"
        handler.behaviour.stall_seconds = 0
        survivor = _start(env, tmp_path / "survivor.log")
        output = _finish(survivor, tmp_path / "survivor.log", 300)
        assert survivor.returncode == 0, output
        received = Counter(handler.recipients())
    assert set(received) == addresses  # nothing lost
    duplicates = sum(count - 1 for count in received.values())
    # Only what was in flight or acknowledged and not yet written can repeat, however slow
    # the database was: no sender starts a message while UNWRITTEN_LIMIT results wait, so
    # at most UNWRITTEN_LIMIT - 1 of them plus one per connection (4). It used to be ~100.
    assert duplicates <= UNWRITTEN_LIMIT - 1 + POOL, duplicates
    with db.session() as session:
        open_count = session.scalar(
            select(func.count()).where(Delivery.state != DeliveryState.sent)
        )
    assert open_count == 0
    print(
        f"killed after {delivered_before} messages at {rate:.0f}/s; "
        f"{duplicates} duplicate(s) on restart"
    )


def _sent_in_ledger(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).where(Delivery.state == DeliveryState.sent)) or 0


def test_a_database_slow_to_take_results_holds_the_senders_back(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """While the database takes no results (another transaction locks the ledger), the
    worker stops starting messages once UNWRITTEN_LIMIT results wait: what the relay has
    accepted and the ledger does not show stays bounded, so a crash then repeats no more."""
    _postgres_only(db)
    _edition(db, settings, tmp_path, readers=3_000)
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.002
        worker = _start(worker_env(settings, port), tmp_path / "worker.log")
        try:
            deadline = time.monotonic() + 120
            while len(handler.recipients()) < 300 and time.monotonic() < deadline:
                time.sleep(0.005)
            with db.engine.connect() as blocker:
                blocker.execute(text("LOCK TABLE deliveries IN SHARE MODE"))
                time.sleep(3)  # long enough for hundreds of messages at this pace
                ahead = len(handler.recipients()) - _sent_in_ledger(db)
                blocker.rollback()
            output = _finish(worker, tmp_path / "worker.log", 300)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, output
        received = Counter(handler.recipients())
    assert len(received) == 3_000 and max(received.values()) == 1
    assert 0 < ahead <= UNWRITTEN_LIMIT - 1 + POOL, ahead
