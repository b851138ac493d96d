"""The built-in mail catcher: a real SMTP server on loopback that keeps each message as a
file, listed newest first and read back by key (never by path)."""

import asyncio
from pathlib import Path

from tests.smtpserver import free_port
from tidings.config import SmtpTarget
from tidings.deliver.catcher import list_caught, mailbox_dir, read_caught, start_catcher
from tidings.mail.transport import SmtpConnection


def _send(port: int, subject: str) -> None:
    message = (
        f"Subject: {subject}\r\nFrom: news@example.ge\r\nTo: reader@example.ge\r\n"
        "Date: Fri, 26 Jun 2026 08:00:00 +0400\r\n\r\nHello.\r\n"
    ).encode()

    async def send() -> None:
        connection = SmtpConnection(SmtpTarget("127.0.0.1", port, "none", None, None), 5.0)
        try:
            reply = await connection.send("news@example.ge", "reader@example.ge", message)
            assert reply.message == "OK: caught by the Tidings mailbox"
        finally:
            await connection.close()

    asyncio.run(send())


def test_caught_messages_are_kept_listed_and_read_back(tmp_path: Path) -> None:
    assert list_caught(tmp_path) == []  # no mailbox yet
    port = free_port()
    catcher = start_catcher(tmp_path, port)
    try:
        _send(port, "First")
        _send(port, "Second")
    finally:
        catcher.stop()
    caught = list_caught(tmp_path)
    assert [c.subject for c in caught] == ["Second", "First"]  # newest first
    assert (caught[0].to, caught[0].sender) == ("reader@example.ge", "news@example.ge")
    assert not list(mailbox_dir(tmp_path).glob(".*.tmp"))  # written whole, then renamed
    found = read_caught(tmp_path, caught[1].key)
    assert found is not None
    parsed, raw = found
    assert parsed["Subject"] == "First" and raw.endswith(b"Hello.\r\n")
    assert list_caught(tmp_path, limit=1) == caught[:1]


def test_a_key_is_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "secret.eml").write_bytes(b"Subject: not in the mailbox\r\n\r\n")
    mailbox_dir(tmp_path).mkdir()
    for key in ("../secret", "..", "/etc/passwd", "a/b", "x.eml", ""):
        assert read_caught(tmp_path, key) is None
    assert read_caught(tmp_path, "123-abc") is None  # well formed, but not there
