"""Starting a worker: one connection per pool slot, to the configured server or the built-in
catcher, which only one process on a port starts."""

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from tests.deliver.ledgerrows import sending
from tests.smtpserver import free_port
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deliver.catcher import list_caught
from tidings.deliver.runner import CatcherHandle, make_transports, run_worker
from tidings.mail.transport import SmtpConnection


def test_one_connection_per_pool_slot(settings: Settings) -> None:
    three = settings.model_copy(update={"smtp_pool_size": 3})
    transports = make_transports(three)
    assert len(transports) == 3
    assert all(isinstance(t, SmtpConnection) for t in transports)
    assert len({id(t) for t in transports}) == 3


def test_the_catcher_starts_only_without_a_server_and_once_per_port(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = settings.model_copy(update={"catcher_port": free_port(), "data_dir": tmp_path})
    first = CatcherHandle(local)
    try:
        with caplog.at_level(logging.INFO):
            second = CatcherHandle(local)  # another process on the same machine, say
        assert "already listens" in caplog.text
        second.stop()
    finally:
        first.stop()
        first.stop()  # stopping twice is harmless
    configured = local.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    CatcherHandle(configured).stop()  # a server is configured: nothing is started


def test_a_draining_worker_sends_into_the_catcher_and_stops_it(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    local = settings.model_copy(update={"catcher_port": free_port(), "data_dir": tmp_path})
    made = sending(db, local, readers=3)
    stats = asyncio.run(run_worker(db, local, drain=True, stop=asyncio.Event()))
    assert stats.sent == 3
    caught = sorted(c.to.rsplit("<", 1)[1].rstrip(">") for c in list_caught(tmp_path))
    assert caught == sorted(made.ids)
    with socket.socket() as probe:  # stopped: nothing listens there any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", local.catcher_port))
