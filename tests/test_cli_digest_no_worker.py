"""``digest send`` without --no-wait: with no worker alive it says so in one line and sends
the edition itself; with a live worker it waits for it; if that worker goes away meanwhile,
it sends the rest. Real SMTP server, real worker process."""

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers, worker_env
from tests.conftest import Cli
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.cli.digest import NO_WORKER, WORKER_GONE
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver.heartbeats import alive


@pytest.fixture
def relay(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> Iterator[tuple[RecordingHandler, int]]:
    with smtp_server() as (handler, port):
        monkeypatch.setenv("TIDINGS_SMTP_URL", f"smtp://127.0.0.1:{port}")
        yield handler, port


def _readers(db: Database, count: int) -> list[str]:
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    return subscribers(db, "daily", count)


def _states(db: Database) -> dict[DeliveryState, int]:
    with db.session() as session:
        rows = session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return {state: n for state, n in rows}


def _edition_status(db: Database) -> EditionStatus:
    with db.session() as session:
        return session.scalars(select(Edition.status)).one()


def _start_worker(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tidings", "worker", "--processes", "1"],
            env=worker_env(settings, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return worker


def _wait_alive(db: Database, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not any(h.pid == worker.pid for h in alive(db)):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_with_no_worker_it_says_so_and_sends_the_edition_itself(
    cli: Cli, db: Database, relay: tuple[RecordingHandler, int]
) -> None:
    handler, _ = relay
    addresses = _readers(db, 4)
    assert alive(db) == []
    sent = cli("digest", "send", "daily", "--subject", "Election special")
    assert sent.exit_code == 0, sent.output
    lines = sent.stdout.splitlines()
    assert lines[0] == "edition 1: 2 article(s), 4 delivery(ies) queued"
    assert lines[1] == NO_WORKER
    assert "sent 4" in sent.stdout  # the edition's counts, under the progress bar
    assert "sent 4, deferred 0, failed 0, uncertain 0, released 0" in sent.stdout
    assert sorted(handler.recipients()) == sorted(addresses)
    assert {c.message["Subject"] for c in handler.caught} == {"Election special"}
    assert _states(db) == {DeliveryState.sent: 4}
    assert _edition_status(db) == EditionStatus.sent
    assert alive(db) == []  # it beat while it sent, and took its row away after


def test_with_a_live_worker_it_waits_for_it(
    cli: Cli, db: Database, settings: Settings, relay: tuple[RecordingHandler, int], tmp_path: Path
) -> None:
    handler, port = relay
    addresses = _readers(db, 5)
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, port, log)
    try:
        _wait_alive(db, worker, log)
        sent = cli("digest", "send", "daily")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    assert sent.exit_code == 0, sent.output
    assert NO_WORKER not in sent.stdout and WORKER_GONE not in sent.stdout
    assert "sent 5" in sent.stdout
    assert "released" not in sent.stdout  # no worker ran in the command itself
    assert "sent 5, deferred 0" in log.read_text()  # the worker process sent them all
    assert sorted(handler.recipients()) == sorted(addresses)
    assert _states(db) == {DeliveryState.sent: 5}


def test_when_the_worker_stops_midway_it_sends_the_rest(
    cli: Cli, db: Database, settings: Settings, relay: tuple[RecordingHandler, int], tmp_path: Path
) -> None:
    handler, port = relay
    addresses = _readers(db, 60)
    handler.behaviour.stall_seconds = 0.2  # 20 messages a second over 4 connections
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, port, log)
    _wait_alive(db, worker, log)

    def stop_after_some() -> None:
        deadline = time.monotonic() + 30
        while len(handler.recipients()) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    try:
        sent = cli("digest", "send", "daily")
    finally:
        stopper.join()
        assert worker.wait(timeout=30) == 0, log.read_text()
    assert sent.exit_code == 0, sent.output
    assert WORKER_GONE in sent.stdout and NO_WORKER not in sent.stdout
    by_worker = int(log.read_text().rsplit("sent ", 1)[1].split(",")[0])
    by_command = int(sent.stdout.rsplit("sent ", 1)[1].split(",")[0])
    assert by_worker >= 10 and by_command > 0
    assert by_worker + by_command == 60
    assert sorted(handler.recipients()) == sorted(addresses)  # each exactly once
    assert _states(db) == {DeliveryState.sent: 60}
    assert _edition_status(db) == EditionStatus.sent
