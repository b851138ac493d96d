"""A real SMTP server (aiosmtpd) for the tests: records commands and messages, and can be
told to answer 4xx or 5xx, drop the connection after DATA, or stall."""

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session


@dataclass
class Caught:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed: Any = message_from_bytes(self.data, policy=policy.default)
        return parsed  # type: ignore[no-any-return]


@dataclass
class Behaviour:
    """How the server answers. ``rcpt_replies`` maps an address to an RCPT reply."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    drop_after_data: bool = False
    stall_seconds: float = 0.0


class RecordingHandler:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.caught: list[Caught] = []
        self.commands: list[str] = []
        self.lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.lock:
            self.commands.append(f"RCPT {address}")
        reply = self.behaviour.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        behaviour = self.behaviour
        if behaviour.stall_seconds:
            await asyncio.sleep(behaviour.stall_seconds)
        if behaviour.drop_after_data:
            assert server.transport is not None
            server.transport.abort()
            return "250 never seen"
        if behaviour.data_reply:
            return behaviour.data_reply
        with self.lock:
            self.caught.append(
                Caught(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                )
            )
        return "250 2.0.0 Ok: queued"

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for caught in self.caught for rcpt in caught.rcpt_tos]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()
