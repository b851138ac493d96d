"""The built-in mail catcher: an aiosmtpd server on loopback that keeps every message as a
file under the data dir (``mailbox/``), for the single-process install and the demo."""

import asyncio
import time
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

MAILBOX = "mailbox"


def mailbox_dir(data_dir: Path) -> Path:
    return data_dir / MAILBOX


class _KeepHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.folder / f".{name}.tmp"
        await asyncio.to_thread(_write_atomically, temporary, self.folder / name, content)
        return "250 OK: caught by the Tidings mailbox"


def _write_atomically(temporary: Path, final: Path, content: bytes) -> None:
    temporary.write_bytes(content)
    temporary.replace(final)


def start_catcher(data_dir: Path, port: int, host: str = "127.0.0.1") -> Controller:
    """Start the catcher in a background thread; call ``.stop()`` on the result to end it."""
    controller = Controller(_KeepHandler(mailbox_dir(data_dir)), hostname=host, port=port)
    controller.start()
    return controller


@dataclass(frozen=True)
class CaughtMessage:
    """One caught message, as the mailbox page lists it."""

    key: str
    subject: str
    to: str
    sender: str
    date: str


def list_caught(data_dir: Path, limit: int = 200) -> list[CaughtMessage]:
    """The newest caught messages first."""
    folder = mailbox_dir(data_dir)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), reverse=True)[:limit]
    return [_summary(path) for path in files]


def _summary(path: Path) -> CaughtMessage:
    message = _parse(path.read_bytes())
    return CaughtMessage(
        path.stem,
        str(message["Subject"] or ""),
        str(message["To"] or ""),
        str(message["From"] or ""),
        str(message["Date"] or ""),
    )


def _parse(raw: bytes) -> EmailMessage:
    parsed: Any = message_from_bytes(raw, policy=policy.default)
    return parsed  # type: ignore[no-any-return]


def read_caught(data_dir: Path, key: str) -> tuple[EmailMessage, bytes] | None:
    """A caught message by key (parsed, raw), or None; keys are file stems, never paths."""
    if not key.replace("-", "").isalnum():
        return None
    path = mailbox_dir(data_dir) / f"{key}.eml"
    if not path.is_file():
        return None
    raw = path.read_bytes()
    return _parse(raw), raw
