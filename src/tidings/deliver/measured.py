"""The worker's figures for Prometheus (see :mod:`tidings.metrics`): how long each message
takes to hand to the relay, and what became of it."""

import time
from collections.abc import Callable

from tidings.deliver.ledger import Outcome
from tidings.mail.transport import SmtpReply, Transport
from tidings.metrics import MESSAGES, SMTP_SEND_SECONDS


class TimedTransport:
    """A transport whose every send, answered or not, is timed into the SMTP histogram."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def open(self) -> None:
        await self._transport.open()

    async def send(self, sender: str, recipient: str, message: bytes) -> SmtpReply:
        started = time.perf_counter()
        try:
            return await self._transport.send(sender, recipient, message)
        finally:
            SMTP_SEND_SECONDS.observe(time.perf_counter() - started)

    async def close(self) -> None:
        await self._transport.close()


def counted(record: Callable[[Outcome], None]) -> Callable[[Outcome], None]:
    """``record``, counting each outcome by its result first."""

    def count_and_record(outcome: Outcome) -> None:
        MESSAGES.labels(outcome.state.value).inc()
        record(outcome)

    return count_and_record
