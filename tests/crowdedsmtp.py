"""The tests' aiosmtpd server (tests/smtpserver.py) limited in concurrent connections, the
way providers limit them: a connection beyond the limit is greeted with 421 (as Postfix's
anvil does), and the server counts what it accepted and refused."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer

from tests.smtpserver import RecordingHandler, free_port

REFUSAL = "421 4.7.0 Too many concurrent connections, try again later"


@dataclass
class Crowd:
    """Connections open now, the most at once, and how many were refused."""

    limit: int
    open: int = 0
    peak: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> bool:
        with self.lock:
            if self.open >= self.limit:
                self.refused += 1
                return False
            self.open += 1
            self.peak = max(self.peak, self.open)
            return True

    def leave(self) -> None:
        with self.lock:
            self.open -= 1


class CrowdedSMTP(SMTPServer):
    """Greets with 421 instead of 220 when the crowd is full."""

    def __init__(self, handler: Any, crowd: Crowd, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._crowd = crowd
        self._admitted: bool | None = None

    def connection_made(self, transport: Any) -> None:
        if self._admitted is None:
            self._admitted = self._crowd.enter()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted:
            self._crowd.leave()
            self._admitted = False
        super().connection_lost(error)

    async def push(self, status: str) -> None:
        if self._admitted is False and status.startswith("220 "):
            status = REFUSAL
        await super().push(status)


class CrowdedController(Controller):
    def __init__(self, handler: Any, crowd: Crowd, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.crowd = crowd

    def factory(self) -> SMTPServer:
        return CrowdedSMTP(self.handler, self.crowd, **self.SMTP_kwargs)


@contextmanager
def crowded_server(limit: int) -> Iterator[tuple[RecordingHandler, Crowd, int]]:
    """A recording server that takes at most ``limit`` connections at once."""
    handler = RecordingHandler()
    crowd = Crowd(limit)
    port = free_port()
    controller = CrowdedController(handler, crowd, hostname="127.0.0.1", port=port)
    controller.start()
    deadline = time.monotonic() + 5
    while crowd.open and time.monotonic() < deadline:  # the controller's own probe leaves
        time.sleep(0.01)
    try:
        yield handler, crowd, port
    finally:
        controller.stop()
