"""SIGTERM: the worker finishes what is in flight, hands the rest back, and exits cleanly."""

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers, worker_env
from tests.smtpserver import smtp_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState


def test_sigterm_finishes_in_flight_and_releases_the_rest(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    subscribers(db, "daily", 300)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    log = tmp_path / "worker.log"
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.02
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tidings", "worker", "--processes", "1"],
                env=worker_env(settings, port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while len(handler.recipients()) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
        received = len(handler.recipients())
    output = log.read_text()
    assert "released" in output
    with db.session() as session:
        states = dict(
            session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
    assert DeliveryState.sending not in states, output  # nothing left leased to a stopped worker
    assert states.get(DeliveryState.sent, 0) == received  # every message sent was recorded
    assert states.get(DeliveryState.queued, 0) == 300 - received
