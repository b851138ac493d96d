"""A careless operator and a hostile internet against the operations faces: /readyz while
the database hangs, and the access log's hiding of readers' signed links."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import Cli
from tests.webserver import serve
from tidings.cli.processes import REDACTED, redact_token
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.mail.links import unsubscribe_path
from tidings.mail.tokens import Purpose, sign
from tidings.web import health
from tidings.web.app import create_app


@dataclass
class SilentServer:
    """A "database" that takes every connection and never says a word (a hung server, a
    firewall that drops the replies)."""

    port: int
    taken: list[socket.socket] = field(default_factory=list)

    def hang_up(self) -> None:
        """Close every connection taken: the stuck callers get their end of file."""
        for each in self.taken:
            each.close()


@contextmanager
def silent_database() -> Iterator[SilentServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    server = SilentServer(listener.getsockname()[1])
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                server.taken.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        done.set()
        thread.join(5)
        server.hang_up()
        listener.close()


def test_probes_of_a_hung_database_share_one_check(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every probe answers within the timeout, and the probes share one check in flight:
    they never take a database connection (and a thread) each while the database hangs,
    which would drain the pool and the threads the public pages need."""
    monkeypatch.setattr(health, "READY_TIMEOUT_SECONDS", 0.3)
    with silent_database() as silent:
        hung = open_database(f"postgresql+psycopg://postgres@127.0.0.1:{silent.port}/hung")
        with serve(create_app(settings, hung)) as base:
            answers = [httpx.get(f"{base}/readyz", timeout=5) for _ in range(6)]
            taken = len(silent.taken)
            silent.hang_up()  # before the server stops: it waits for its threads
    hung.dispose()
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["checks"]["database"]["ok"] is False
    assert taken == 1, f"{taken} connections for six probes of one hung database"


@pytest.mark.parametrize(
    "path", ["/%75/{token}", "/u/{token}", "/%75/{token}?x=1", "/%70references/{token}"]
)
def test_access_log_hides_a_token_however_the_path_is_spelt(settings: Settings, path: str) -> None:
    """uvicorn logs the raw path, and ``/%75/TOKEN`` reaches the unsubscribe page as
    ``/u/TOKEN`` (the router sees the decoded path): the token is hidden just the same."""
    token = sign("a test secret of some length", Purpose.unsubscribe, 42)
    assert unsubscribe_path(token) == f"/u/{token}"
    logged = redact_token(path.format(token=token))
    assert token not in logged
    assert REDACTED in logged


@pytest.mark.parametrize("count", ["0", "-3", "257", "many", "1e9"])
def test_nonsense_process_counts_are_refused_before_anything_starts(
    cli: Cli, db: Database, count: str
) -> None:
    """A careless ``--processes``: refused with a clear sentence and no worker started
    (nothing is due, so a started worker with --drain would just say what it did)."""
    result = cli("worker", "--drain", "--processes", count)
    assert result.exit_code != 0, result.output
    assert "Invalid value for '--processes'" in result.output
    assert "sent " not in result.output


def test_more_than_one_process_on_sqlite_is_refused(cli: Cli, db: Database) -> None:
    result = cli("worker", "--drain", "--processes", "3")
    if db.engine.dialect.name == "sqlite":
        assert result.exit_code != 0
        assert "needs PostgreSQL" in result.output
    else:
        assert result.exit_code == 0, result.output
