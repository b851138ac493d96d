"""Worker heartbeats: a running worker (a real process, or the real Worker in this one) keeps
a fresh row with its host, pid, rate and what it holds; a clean stop takes it away; a stale
row counts as dead; a beat that fails never stops the sending."""

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.builders import articles, newsletter, subscribers, worker_env
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import WorkerHeartbeat
from tidings.deliver.heartbeats import (
    KEEP_SILENT,
    Heartbeat,
    alive,
    beat,
    forget,
    forget_silent,
    roll_call,
    sending_is_due,
    stale_after,
)
from tidings.deliver.runner import make_transports
from tidings.deliver.worker import Worker


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def _edition(db: Database, settings: Settings, readers: int) -> None:
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    subscribers(db, "daily", readers)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))


def _heartbeat(name: str, last: datetime, started: datetime | None = None) -> Heartbeat:
    return Heartbeat(name, "host-a", 4242, started or last, last, 12.5, 7)


def test_a_beat_is_one_row_per_worker_kept_fresh_then_forgotten(db: Database) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    started = now - timedelta(minutes=3)
    beat(db, _heartbeat("w1", now - timedelta(seconds=4), started))
    beat(db, Heartbeat("w1", "host-a", 4242, now, now, 30.0, 2))  # the same worker, later
    beat(db, _heartbeat("w2", now - stale_after() - timedelta(seconds=1)))  # went quiet
    with db.session() as session:
        assert session.scalar(select(WorkerHeartbeat.started_at).filter_by(name="w1")) == started
    found = alive(db, now)
    assert [(h.name, h.last_beat_at, h.per_second, h.in_flight) for h in found] == [
        ("w1", now, 30.0, 2)
    ]
    assert found[0].started_at == started  # a beat never moves the start
    assert [h.name for h in alive(db, now - timedelta(minutes=1))] == ["w1", "w2"]
    forget(db, "w1")
    assert alive(db, now) == []


def test_due_means_a_sending_edition_has_a_delivery_waiting_now(
    db: Database, settings: Settings
) -> None:
    assert not sending_is_due(db)
    _edition(db, settings, readers=2)
    assert sending_is_due(db)
    assert not sending_is_due(db, datetime.now(UTC) - timedelta(hours=1))  # queued later


def test_roll_call_tells_live_from_silent_and_a_starting_worker_clears_the_long_dead(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    _, settings = smtp
    now = datetime.now(UTC)
    beat(db, _heartbeat("live", now))
    beat(db, _heartbeat("silent", now - timedelta(minutes=10)))
    beat(db, _heartbeat("long-dead", now - KEEP_SILENT - timedelta(minutes=1)))
    roll = roll_call(db, now)
    assert [h.name for h in roll.alive] == ["live"]
    assert [h.name for h in roll.silent] == ["silent"]
    assert not roll.due and not roll.unattended
    _edition(db, settings, readers=1)
    later = datetime.now(UTC)  # the delivery is due from when it was queued
    assert roll_call(db, later).due and not roll_call(db, later).unattended
    forget(db, "live")
    assert roll_call(db, later).unattended

    assert (
        asyncio.run(
            Worker(db, settings, make_transports(settings)).run(drain=True, stop=asyncio.Event())
        ).sent
        == 1
    )
    with db.session() as session:
        left = set(session.scalars(select(WorkerHeartbeat.name)))
    assert left == {"silent"}  # the drained worker forgot itself; the long-dead row is gone
    assert forget_silent(db, now + KEEP_SILENT) == 1


def test_a_worker_process_beats_while_it_runs_and_forgets_on_sigterm(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _edition(db, settings, readers=200)
    log = tmp_path / "worker.log"
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.2  # 20/s: still sending at the second beat
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tidings", "worker", "--processes", "1"],
                env=worker_env(settings, port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            mine: list[Heartbeat] = []
            while not mine and time.monotonic() < deadline:
                mine = [h for h in alive(db) if h.pid == worker.pid]
                time.sleep(0.05)
            assert mine, log.read_text()
            first = mine[0]
            assert first.host == socket.gethostname()
            assert first.name.startswith(f"{socket.gethostname()[:64]}:{worker.pid}:")
            assert abs(first.started_at - datetime.now(UTC)) < timedelta(seconds=30)
            # The next beat (5 s on) carries the rate and what the worker holds.
            later = first
            while later.last_beat_at == first.last_beat_at and time.monotonic() < deadline + 10:
                time.sleep(0.2)
                later = next(h for h in alive(db) if h.pid == worker.pid)
            assert later.last_beat_at > first.last_beat_at
            assert later.started_at == first.started_at
            assert later.per_second > 0 and later.in_flight > 0, later
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log.read_text()
    assert alive(db) == []
    with db.session() as session:
        assert session.scalars(select(WorkerHeartbeat)).all() == []  # gone, not only stale


def test_the_worker_object_beats_on_its_own_timer(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    handler.behaviour.stall_seconds = 0.05
    _edition(db, settings, readers=40)
    seen: list[Heartbeat] = []

    async def run() -> int:
        stop = asyncio.Event()
        worker = Worker(db, settings, make_transports(settings), beat_seconds=0.1)
        task = asyncio.create_task(worker.run(drain=False, stop=stop))
        deadline = time.monotonic() + 20
        while len({h.last_beat_at for h in seen}) < 4 and time.monotonic() < deadline:
            seen.extend(h for h in await asyncio.to_thread(alive, db) if h.name == worker.name)
            await asyncio.sleep(0.05)
        stop.set()
        return (await task).sent

    sent = asyncio.run(run())
    assert len({h.last_beat_at for h in seen}) >= 4  # several beats while claims went on
    assert any(h.in_flight > 0 for h in seen)
    assert sent > 0
    assert alive(db) == []


def test_a_failing_beat_never_stops_the_sending(
    db: Database, smtp: tuple[RecordingHandler, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    handler, settings = smtp
    _edition(db, settings, readers=5)
    with db.engine.begin() as connection:  # the beat's table is away: every beat fails
        connection.execute(text("ALTER TABLE worker_heartbeats RENAME TO heartbeats_away"))
    try:
        worker = Worker(db, settings, make_transports(settings))
        stats = asyncio.run(worker.run(drain=True, stop=asyncio.Event()))
    finally:
        with db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE heartbeats_away RENAME TO worker_heartbeats"))
    assert stats.sent == 5 and len(handler.recipients()) == 5
    assert "cannot write the worker's heartbeat" in caplog.text
    assert "cannot remove the worker's heartbeat" in caplog.text
