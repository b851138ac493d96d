"""The scheduler polls the bounce mailbox when TIDINGS_BOUNCE_IMAP_URL is set: a DSN
waiting in a real dovecot is handled soon after the scheduler starts, and moved."""

import asyncio
import logging

import pytest
from pydantic import SecretStr

from tests.dovecot import dovecot
from tests.inbound.bounces import dsn, inbound_rows, sent_edition, suppressed
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.schedule.scheduler import TidingsScheduler


def _run_until_stored(db: Database, settings: Settings) -> None:
    """Run the scheduler until an inbound message is stored (10 s at most), then stop it."""

    async def start_and_stop() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(TidingsScheduler(db, settings).run(stop))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if inbound_rows(db):
                break
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    asyncio.run(start_and_stop())


def test_the_scheduler_polls_the_bounce_mailbox(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, _ = sent_edition(db, settings)
    with dovecot() as server:
        # The job trusts the system's store, which OpenSSL reads from here.
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        server.append(dsn(ana.return_path, ana.email))
        polling = settings.model_copy(update={"bounce_imap_url": SecretStr(server.url)})
        _run_until_stored(db, polling)
        assert server.messages("INBOX") == []
        assert len(server.messages("Tidings/Handled")) == 1
    assert suppressed(db) == {ana.email}
    assert inbound_rows(db) == [("imap", ana.return_path, "hard_bounce", ana.delivery_id)]


def test_a_mailbox_that_cannot_be_reached_is_one_line_in_the_log(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url = "imaps://bounces:secret-word@127.0.0.1:1/INBOX"
    polling = settings.model_copy(update={"bounce_imap_url": SecretStr(url)})

    async def one_poll() -> None:
        await TidingsScheduler(db, polling)._poll_bounces()

    with caplog.at_level(logging.WARNING):
        asyncio.run(one_poll())
    said = [r for r in caplog.records if r.name == "tidings.schedule.scheduler"]
    assert len(said) == 1 and said[0].exc_info is None
    assert "imaps://127.0.0.1:1/INBOX: cannot connect" in said[0].getMessage()
    assert "secret-word" not in caplog.text
