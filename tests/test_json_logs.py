"""TIDINGS_LOG_FORMAT=json: every line a long-running process writes to standard error is one
JSON object, carrying the edition, delivery and SMTP reply where they apply. Real processes
(a worker into the test SMTP server, the web face over HTTP)."""

import json
import logging
import signal
import smtplib
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.builders import articles, newsletter, subscribers, worker_env
from tests.inbound.bounces import dsn, sent_edition
from tests.smtpserver import free_port, smtp_server
from tidings.cli.logs import JsonFormatter
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database


def _lines(log: Path) -> list[dict[str, Any]]:
    """Every line of ``log`` as JSON (a line that is not fails the test, naming it)."""
    found = []
    for line in log.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert {"time", "level", "logger", "message"} <= set(found[-1]), line
    return found


def test_a_worker_logs_json_lines_with_the_delivery_and_the_smtp_reply(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """On PostgreSQL this runs the supervisor and its children (one per core); on SQLite one
    process: their lines are JSON alike."""
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    addresses = subscribers(db, "daily", 3)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    err = tmp_path / "worker.err"
    with smtp_server() as (handler, port), err.open("wb") as out:
        handler.behaviour.rcpt_replies[addresses[0]] = "550 5.1.1 No such user here"
        env = worker_env(settings, port, TIDINGS_LOG_FORMAT="json")
        done = subprocess.run(
            [sys.executable, "-m", "tidings", "worker", "--drain"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=out,
            timeout=300,
        )
    assert done.returncode == 0, err.read_text()
    assert "sent 2, deferred 0, failed 1" in done.stdout.decode()  # stdout stays for people
    lines = _lines(err)
    refused = [line for line in lines if line.get("state") == "failed"]
    assert len(refused) == 1, lines
    assert refused[0]["level"] == "INFO"
    assert refused[0]["logger"] == "tidings.deliver.writebehind"
    assert refused[0]["edition"] == 1 and isinstance(refused[0]["delivery"], int)
    assert refused[0]["smtp_code"] == 550
    assert "No such user here" in refused[0]["smtp_reply"]
    datetime.fromisoformat(refused[0]["time"])  # ISO 8601
    if db.engine.dialect.name == "postgresql":  # the supervisor's lines name their worker
        started = [line for line in lines if line["message"].startswith("worker ")]
        assert {line["worker"] for line in started} >= {0, 1}
    assert settings.secret not in err.read_text()


def test_the_web_face_logs_json_lines_and_hides_reader_tokens(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    err = tmp_path / "serve.err"
    env = worker_env(settings, 1, TIDINGS_LOG_FORMAT="json")
    with err.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, err.read_text()
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}/u/reader-secret-token", timeout=5)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    lines = _lines(err)
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any("GET /healthz" in message for message in access), lines
    assert any("/u/[token]" in message for message in access), lines
    assert "reader-secret-token" not in err.read_text()
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # startup lines too


def test_the_inbound_listener_logs_what_came_back_for_which_delivery(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    ana, _ = sent_edition(db, settings)
    port = free_port()
    err = tmp_path / "inbound.err"
    env = worker_env(settings, free_port(), TIDINGS_LOG_FORMAT="json")
    with err.open("wb") as out:
        listener = subprocess.Popen(
            [sys.executable, "-m", "tidings", "inbound", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert listener.poll() is None and time.monotonic() < deadline, err.read_text()
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
                    client.sendmail("", [ana.return_path], dsn(ana.return_path, ana.email))
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
    finally:
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=30)
    bounced = [line for line in _lines(err) if line.get("meaning") == "hard_bounce"]
    assert len(bounced) == 1, err.read_text()
    assert bounced[0]["delivery"] == ana.delivery_id
    assert ana.return_path not in err.read_text()  # the signed address stays out


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        record = logging.LogRecord(
            "tidings.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    record.edition = 7
    record.slot = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    record.password = "never-shown"  # not a field a JSON line carries
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed here" and parsed["edition"] == 7
    assert parsed["slot"] == "2026-12-07T08:00:00+00:00"
    assert "ValueError: broken" in parsed["exception"]
    assert "password" not in parsed and "never-shown" not in line
