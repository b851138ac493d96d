"""The inbound SMTP/LMTP listener on a free port, spoken to by a real client (smtplib, and a
raw socket for LMTP's per-recipient replies), on SQLite and PostgreSQL: a DSN to a genuine
return path is stored and suppresses its reader; a forged address is refused at RCPT and
nothing is stored; an oversized message is 552; a database that is away is 451."""

import asyncio
import smtplib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.inbound.bounces import dsn, forged, inbound_rows, sent_edition, suppressed
from tests.smtpserver import free_port
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.inbound.server import serve_inbound


@contextmanager
def listener(db: Database, settings: Settings) -> Iterator[int]:
    """The listener on a free loopback port, in a thread with its own event loop."""
    port = free_port()
    started = threading.Event()
    holder: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        holder["loop"] = (asyncio.get_running_loop(), stop)
        task = asyncio.create_task(serve_inbound(db, settings, "127.0.0.1", port, stop, ready))
        await ready.wait()
        started.set()
        await task

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10), "the listener did not start"
    try:
        yield port
    finally:
        loop, stop = holder["loop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        assert not thread.is_alive()


def test_a_dsn_to_a_genuine_return_path_is_stored_and_suppresses(
    db: Database, settings: Settings
) -> None:
    ana, _ = sent_edition(db, settings)
    with listener(db, settings) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("relay.example.ge")
        assert client.has_extn("size")
        assert int(client.esmtp_features["size"]) == settings.inbound_max_bytes
        refused = client.sendmail("", [ana.return_path], dsn(ana.return_path, ana.email))
        assert refused == {}
    assert suppressed(db) == {ana.email}
    assert inbound_rows(db) == [("lmtp", ana.return_path, "hard_bounce", ana.delivery_id)]


def test_a_forged_return_path_is_refused_at_rcpt_and_nothing_is_stored(
    db: Database, settings: Settings
) -> None:
    ana, _ = sent_edition(db, settings)
    wrong = [forged(ana.return_path), "postmaster@messenger.example.ge", "b-1-xyz@example.ge"]
    with listener(db, settings) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("relay.example.ge")
        client.mail("<>")
        for address in wrong:
            code, reply = client.rcpt(address)
            assert (code, reply[:5]) == (550, b"5.1.1"), address
        code, _ = client.docmd("DATA")
        assert code == 503  # no recipient was taken
    assert suppressed(db) == set()
    assert inbound_rows(db) == []


def test_the_bounce_domain_when_set_is_the_only_one_taken(db: Database, settings: Settings) -> None:
    domain = settings.model_copy(update={"bounce_domain": "bounces.messenger.example.ge"})
    ana, _ = sent_edition(db, settings)  # its return path is on the From domain
    assert ana.return_path.endswith("@messenger.example.ge")
    with listener(db, domain) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("relay.example.ge")
        client.mail("<>")
        assert client.rcpt(ana.return_path)[0] == 550
        on_domain = ana.return_path.replace("@messenger.", "@bounces.messenger.")
        assert client.rcpt(on_domain)[0] == 250


def test_smtp_takes_one_recipient_per_message(db: Database, settings: Settings) -> None:
    ana, ben = sent_edition(db, settings)
    with listener(db, settings) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("relay.example.ge")
        client.mail("<>")
        assert client.rcpt(ana.return_path)[0] == 250
        code, reply = client.rcpt(ben.return_path)
        assert (code, reply[:5]) == (452, b"4.5.3")
        assert client.data(dsn(ana.return_path, ana.email))[0] == 250
    assert suppressed(db) == {ana.email}


def test_an_oversized_message_is_552_and_not_stored(db: Database, settings: Settings) -> None:
    ana, _ = sent_edition(db, settings)
    big = dsn(ana.return_path, ana.email, padding=settings.inbound_max_bytes + 1000)
    assert len(big) > settings.inbound_max_bytes
    with listener(db, settings) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("relay.example.ge")
        # Announced with SIZE: refused at MAIL FROM, before a byte is sent.
        code, _ = client.mail("<>", [f"SIZE={len(big)}"])
        assert code == 552
        client.rset()
        # Not announced: read to the end, then refused.
        assert client.mail("<>")[0] == 250
        assert client.rcpt(ana.return_path)[0] == 250
        code, _ = client.data(big)
        assert code == 552
    assert inbound_rows(db) == []
    assert suppressed(db) == set()


def _lmtp_exchange(port: int, commands: list[bytes], data: bytes) -> list[str]:
    """Speak LMTP by hand (smtplib reads only one reply after DATA, LMTP sends one per
    recipient): the last line of each command's reply, then every line after the final dot
    and QUIT."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")
        assert stream.readline().startswith(b"220")
        said = []
        for command in commands:
            stream.write(command + b"\r\n")
            stream.flush()
            line = stream.readline()
            while line[3:4] == b"-":
                line = stream.readline()
            said.append(line.decode().strip())
        assert data.endswith(b"\r\n")
        stream.write(data.replace(b"\r\n.", b"\r\n..") + b".\r\nQUIT\r\n")
        stream.flush()
        return said + [line.decode().strip() for line in stream]


def test_lmtp_answers_each_recipient(db: Database, settings: Settings) -> None:
    ana, ben = sent_edition(db, settings)
    commands = [
        b"LHLO relay.example.ge",
        b"MAIL FROM:<>",
        f"RCPT TO:<{ana.return_path}>".encode(),
        f"RCPT TO:<{forged(ben.return_path)}>".encode(),  # refused: no reply after DATA
        f"RCPT TO:<{ben.return_path}>".encode(),
        b"DATA",
    ]
    # The return path alone names the delivery: the one message is stored once for each
    # accepted recipient, each with its own delivery, and each is answered on its own line.
    with listener(db, settings) as port:
        lines = _lmtp_exchange(port, commands, dsn(ana.return_path, ana.email))
    assert [line[:3] for line in lines[:6]] == ["250", "250", "250", "550", "250", "354"]
    assert [line[:9] for line in lines[6:]] == ["250 2.0.0", "250 2.0.0", "221 Bye"]
    assert inbound_rows(db) == [
        ("lmtp", ana.return_path, "hard_bounce", ana.delivery_id),
        ("lmtp", ben.return_path, "hard_bounce", ben.delivery_id),
    ]


def test_smtplib_lmtp_client_delivers(db: Database, settings: Settings) -> None:
    ana, _ = sent_edition(db, settings)
    with listener(db, settings) as port, smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo_or_helo_if_needed()
        assert client.does_esmtp
        assert client.sendmail("", [ana.return_path], dsn(ana.return_path, ana.email)) == {}
    assert suppressed(db) == {ana.email}


def test_451_when_the_database_is_away(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """... and the log says so without the message or the whole address (a signed address
    is a credential: a u- address unsubscribes whoever has it)."""
    ana, _ = sent_edition(db, settings)
    away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/tidings"
    down = open_database(away)
    try:
        with (
            listener(down, settings) as port,
            smtplib.SMTP("127.0.0.1", port, timeout=30) as client,
        ):
            client.ehlo("relay.example.ge")
            client.mail("<>")
            assert client.rcpt(ana.return_path)[0] == 250
            code, reply = client.data(dsn(ana.return_path, ana.email))
            assert (code, reply[:5]) == (451, b"4.3.0")
    finally:
        down.dispose()
    assert inbound_rows(db) == []
    assert suppressed(db) == set()
    said = [r.getMessage() for r in caplog.records if r.name.startswith("tidings.inbound")]
    assert said and all("database is away" in line for line in said), said
    assert not any(ana.return_path in line or ana.email in line for line in said), said


@pytest.fixture(autouse=True)
def _quiet_aiosmtpd(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="mail.log")
