"""The console's own mail leaves signed too: a password reset and an invitation, each caught by
a real SMTP server and verified by dkimpy against the published records, on SQLite and
PostgreSQL (they come from the first newsletter's address, whose domain holds the keys)."""

import asyncio
from collections.abc import Iterator

import dkim
import pytest

from tests.builders import newsletter
from tests.mail.dkim.published import dns_of, verified
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.access.accounts import create_user
from tidings.access.consolemail import invite, send_reset
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DkimAlgorithm, UserRole
from tidings.mail.dkim.store import add_key

DOMAIN = "messenger.example.ge"  # tests.builders.SENDER's domain


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


@pytest.mark.parametrize("kind", ["reset", "invitation"])
def test_console_mail_is_signed_by_every_key_of_its_domain(
    db: Database, smtp: tuple[RecordingHandler, Settings], kind: str
) -> None:
    handler, settings = smtp
    keys = [add_key(db, settings, DOMAIN, f"k{a.value}", a) for a in DkimAlgorithm]
    newsletter(db)
    account, _ = create_user(db, "ed@example.ge", UserRole.editor)
    if kind == "reset":
        asyncio.run(send_reset(db, settings, "ed@example.ge"))
    else:
        assert asyncio.run(invite(db, settings, account))
    assert handler.recipients() == ["ed@example.ge"]
    data = handler.caught[0].data
    assert data.count(b"DKIM-Signature:") == len(keys)
    assert verified(data, dns_of(keys)) == [True] * len(keys)
    assert dkim.verify(data, dnsfunc=dns_of(keys))
    assert verified(data.replace(b"ed@example.ge", b"ee@example.ge"), dns_of(keys)) == [
        False
    ] * len(keys)
