"""Polling a real IMAP mailbox (a private dovecot, tests/dovecot.py, over TLS with the test's
own certificate) on SQLite and PostgreSQL: a DSN to a genuine return path is handled and
moved to the done folder, an unrelated message is kept as unknown and moved too, a second
poll handles nothing again; oversized mail is flagged and left; a database that is away
leaves everything in place; the password never shows."""

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from tests.dovecot import PASSWORD, Dovecot, dovecot
from tests.inbound.bounces import dsn, inbound_rows, letter, sent_edition, suppressed
from tests.smtpserver import free_port
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.errors import ConfigError
from tidings.inbound.imap import parse_imap_url, poll_mailbox

DONE = "Tidings/Handled"
CATCH_ALL = "bounces@messenger.example.ge"


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    with dovecot() as server:
        yield server


def _polling(settings: Settings, server: Dovecot, **update: object) -> Settings:
    return settings.model_copy(update={"bounce_imap_url": SecretStr(server.url), **update})


def _forwarded(raw: bytes, return_path: str) -> bytes:
    """The DSN as a catch-all mailbox keeps it: Delivered-To is the mailbox, X-Original-To
    the return path it was sent to."""
    rp = return_path.encode()
    return raw.replace(b"\r\nTo: " + rp, b"\r\nTo: " + CATCH_ALL.encode()).replace(
        b"Delivered-To: " + rp,
        b"Delivered-To: " + CATCH_ALL.encode() + b"\r\nX-Original-To: " + rp,
    )


def test_a_poll_handles_each_message_once_and_moves_it(
    db: Database, settings: Settings, imap: Dovecot
) -> None:
    ana, ben = sent_edition(db, settings)
    imap.append(dsn(ana.return_path, ana.email))
    imap.append(_forwarded(dsn(ben.return_path, ben.email), ben.return_path))
    imap.append(letter())
    polling = _polling(settings, imap)

    first = poll_mailbox(db, polling, ca_file=imap.ca_file)

    assert [h.meaning.value for h in first.handled] == ["hard_bounce", "hard_bounce", "unknown"]
    assert (first.too_large, first.failed, first.database_away) == (0, 0, False)
    assert suppressed(db) == {ana.email, ben.email}
    assert inbound_rows(db) == [
        ("imap", ana.return_path, "hard_bounce", ana.delivery_id),
        ("imap", ben.return_path, "hard_bounce", ben.delivery_id),
        ("imap", CATCH_ALL, "unknown", None),
    ]
    assert imap.messages("INBOX") == []
    moved = imap.messages(DONE)
    assert len(moved) == 3 and any(b"Rustaveli" in raw for raw in moved)

    again = poll_mailbox(db, polling, ca_file=imap.ca_file)
    assert again.handled == []
    assert len(inbound_rows(db)) == 3
    assert len(imap.messages(DONE)) == 3


@pytest.mark.parametrize(
    "capability",
    ["IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN UIDPLUS", "IMAP4rev1 ID"],
    ids=["copy-uid-expunge", "copy-expunge"],
)
def test_without_move_the_message_is_copied_then_expunged(
    db: Database, settings: Settings, capability: str
) -> None:
    ana, _ = sent_edition(db, settings)
    with dovecot(capability) as server:
        server.append(dsn(ana.return_path, ana.email))
        result = poll_mailbox(db, _polling(settings, server), ca_file=server.ca_file)
        assert [h.meaning.value for h in result.handled] == ["hard_bounce"]
        assert server.messages("INBOX") == []
        assert len(server.messages(DONE)) == 1
    assert suppressed(db) == {ana.email}


def test_oversized_mail_is_flagged_and_left(
    db: Database, settings: Settings, imap: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    ana, ben = sent_edition(db, settings)
    polling = _polling(settings, imap, inbound_max_bytes=64 * 1024)
    imap.append(dsn(ana.return_path, ana.email, padding=100 * 1024))
    imap.append(dsn(ben.return_path, ben.email))
    with caplog.at_level(logging.WARNING, logger="tidings.inbound.imap"):
        first = poll_mailbox(db, polling, ca_file=imap.ca_file)
    assert (first.too_large, len(first.handled)) == (1, 1)
    assert "over the size limit" in caplog.text
    assert suppressed(db) == {ben.email}
    assert ["\\Flagged" in flags for flags in imap.flags()] == [True]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tidings.inbound.imap"):
        second = poll_mailbox(db, polling, ca_file=imap.ca_file)
    assert (second.too_large, second.handled) == (1, [])
    assert "over the size limit" not in caplog.text  # said once, when it was flagged
    assert len(imap.messages("INBOX")) == 1
    assert len(inbound_rows(db)) == 1


def test_a_database_that_is_away_leaves_the_mail_for_the_next_poll(
    db: Database, settings: Settings, imap: Dovecot
) -> None:
    ana, _ = sent_edition(db, settings)
    imap.append(dsn(ana.return_path, ana.email))
    imap.append(letter())
    polling = _polling(settings, imap)
    down = open_database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/tidings")
    try:
        away = poll_mailbox(down, polling, ca_file=imap.ca_file)
    finally:
        down.dispose()
    assert (away.database_away, away.handled) == (True, [])
    assert len(imap.messages("INBOX")) == 2
    assert imap.messages(DONE) == []
    back = poll_mailbox(db, polling, ca_file=imap.ca_file)
    assert len(back.handled) == 2
    assert suppressed(db) == {ana.email}


def test_the_certificate_is_verified_and_the_password_never_shows(
    db: Database, settings: Settings, imap: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    imap.append(letter())
    polling = _polling(settings, imap)
    with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED") as untrusted:
        poll_mailbox(db, polling, ca_file=None)  # the system's store does not know it
    wrong = settings.model_copy(
        update={"bounce_imap_url": SecretStr(imap.url.replace("rd%2050", "rd%2051"))}
    )
    with pytest.raises(ConnectionError, match="AUTHENTICATIONFAILED") as refused:
        poll_mailbox(db, wrong, ca_file=imap.ca_file)
    for said in (str(untrusted.value), str(refused.value), caplog.text, repr(polling)):
        assert "w rd" not in said and "rd%20" not in said
    assert len(imap.messages("INBOX")) == 1
    assert inbound_rows(db) == []


def test_the_url_is_read_with_its_percent_encoding() -> None:
    mailbox = parse_imap_url("imaps://bounces%40example.ge:p%40ss%2Fw@imap.example.ge/Bounces")
    assert (mailbox.user, mailbox.password) == ("bounces@example.ge", "p@ss/w")
    assert (mailbox.host, mailbox.port, mailbox.folder) == ("imap.example.ge", 993, "Bounces")
    assert str(mailbox) == "imaps://imap.example.ge:993/Bounces"
    assert "p@ss" not in repr(mailbox)
    assert parse_imap_url("imaps://u:p@h:1993").folder == "INBOX"
    for bad in ("imap://u:p@h/INBOX", "imaps://h/INBOX", "imaps://u:p@h:port/INBOX"):
        with pytest.raises(ConfigError):
            parse_imap_url(bad)
    assert PASSWORD  # the fixture's password needs encoding: the tests above decode it


def test_a_poll_takes_at_most_its_limit_and_the_next_goes_on(
    db: Database, settings: Settings, imap: Dovecot
) -> None:
    ana, ben, cleo = sent_edition(db, settings, readers=3)
    for sent in (ana, ben, cleo):
        imap.append(dsn(sent.return_path, sent.email))
    polling = _polling(settings, imap)
    first = poll_mailbox(db, polling, ca_file=imap.ca_file, limit=2)
    assert len(first.handled) == 2 and len(imap.messages("INBOX")) == 1
    second = poll_mailbox(db, polling, ca_file=imap.ca_file, limit=2)
    assert len(second.handled) == 1 and imap.messages("INBOX") == []
    assert suppressed(db) == {ana.email, ben.email, cleo.email}
    assert len(imap.messages(DONE)) == 3
