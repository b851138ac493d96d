"""``tidings inbound serve`` and ``tidings run`` with TIDINGS_INBOUND_PORT, as real
processes: a DSN sent to the port over SMTP is stored and suppresses its reader; SIGTERM
stops the process cleanly."""

import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.builders import worker_env
from tests.inbound.bounces import dsn, inbound_rows, sent_edition, suppressed
from tests.smtpserver import free_port
from tidings.config import Settings
from tidings.db.engine import Database

TIDINGS = str(Path(sys.executable).parent / "tidings")


def _listening(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


@contextmanager
def running(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [TIDINGS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            raise


def _bounce(port: int, return_path: str, reader: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        assert client.sendmail("", [return_path], dsn(return_path, reader)) == {}


def test_inbound_serve_takes_a_dsn_and_stops_on_sigterm(db: Database, settings: Settings) -> None:
    ana, _ = sent_edition(db, settings)
    port = free_port()
    env = worker_env(settings, free_port())
    with running(["inbound", "serve", "--host", "127.0.0.1", "--port", str(port)], env) as p:
        _listening(port, p)
        _bounce(port, ana.return_path, ana.email)
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    assert suppressed(db) == {ana.email}
    assert inbound_rows(db) == [("lmtp", ana.return_path, "hard_bounce", ana.delivery_id)]


def test_tidings_run_starts_the_listener_when_the_port_is_set(
    db: Database, settings: Settings
) -> None:
    ana, _ = sent_edition(db, settings)
    web, inbound = free_port(), free_port()
    env = worker_env(settings, free_port(), TIDINGS_INBOUND_PORT=str(inbound))
    with running(["run", "--port", str(web)], env) as p:
        _listening(web, p)  # the web server's signal handlers are in place from here
        _listening(inbound, p)
        _bounce(inbound, ana.return_path, ana.email)
        p.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then raises the signal it caught again (exit -15).
        assert p.wait(30) in (0, -signal.SIGTERM)
        log = p.communicate()[1].decode()
    assert "inbound SMTP/LMTP listener on 127.0.0.1 port" in log
    assert "Finished server process" in log and "Traceback" not in log
    assert suppressed(db) == {ana.email}
