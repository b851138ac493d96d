"""The inbound SMTP/LMTP listener (``tidings inbound serve``, and ``tidings run`` when
TIDINGS_INBOUND_PORT is set): the bounce domain's MX, or the MTA's LMTP transport, hands the
mail that comes back to Tidings here.

One port speaks both protocols, chosen by the client's greeting: LHLO is LMTP (one reply per
recipient after DATA), EHLO or HELO is SMTP. A recipient is taken only when its signed address
verifies (on TIDINGS_BOUNCE_DOMAIN when that is set); anything else is refused at RCPT with
550, so the listener is never an open relay and nobody can fill the store with mail to
made-up addresses. A message is answered 250 only once it is stored: a database that cannot
be reached, or any other failure, is 451, and the sender tries again later.
"""

import asyncio
import logging
import socket
from contextlib import suppress

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import DBAPIError

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.errors import describe, is_transient
from tidings.inbound.service import handle_message
from tidings.mail.returnpath import Role, expected_domain, read_address

log = logging.getLogger(__name__)

#: An idle client is dropped after this long (RFC 5321 suggests minutes; a bounce is small).
IDLE_TIMEOUT_SECONDS = 120.0
#: How long stopping waits for the listening socket to close.
CLOSE_SECONDS = 5.0
CHANNEL = "lmtp"

STORED = "250 2.0.0 Ok: handled"
UNKNOWN_RECIPIENT = "550 5.1.1 No such address here"
ONE_RECIPIENT = "452 4.5.3 One recipient per message over SMTP; send the others again"
TRY_AGAIN = "451 4.3.0 Temporary failure; please try again later"


class InboundProtocol(SMTP):
    """aiosmtpd's SMTP that also answers LHLO, and remembers which of the two the client
    spoke, so the handler can answer DATA per recipient for LMTP."""

    lmtp: bool = False

    async def smtp_LHLO(self, arg: str) -> None:
        """The LMTP greeting (RFC 2033): EHLO's reply, and LMTP from now on."""
        self.lmtp = True
        await super().smtp_EHLO(arg)

    async def smtp_EHLO(self, arg: str) -> None:
        self.lmtp = False
        await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg: str) -> None:
        self.lmtp = False
        await super().smtp_HELO(arg)


class InboundHandler:
    """aiosmtpd hooks: RCPT checks the signed address, DATA stores the message once per
    recipient (in a thread: the service's database work blocks)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.domain = expected_domain(settings.bounce_domain)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if read_address(self.settings.secret, address, self.domain) is None:
            return UNKNOWN_RECIPIENT
        # SMTP has one reply for the whole message: with one recipient each, a 451 after a
        # partial store can never make the sender repeat what was stored (RFC 5321 4.5.3.1.10).
        if envelope.rcpt_tos and not _lmtp(server):
            return ONE_RECIPIENT
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        replies = [await self._store(raw, recipient) for recipient in envelope.rcpt_tos]
        # LMTP answers once per accepted recipient, in order (RFC 2033 4.2); aiosmtpd sends
        # the lines as one push.
        return "\r\n".join(replies) if _lmtp(server) else replies[0]

    async def _store(self, raw: bytes, recipient: str) -> str:
        tagged = read_address(self.settings.secret, recipient, self.domain)
        who = f"{tagged.role.name} {tagged.ident}" if tagged else "an unsigned address"
        try:
            handled = await asyncio.to_thread(
                handle_message, self.db, self.settings, raw, recipient, CHANNEL
            )
        except Exception as exc:
            # Never the error's text (SQLAlchemy's carries the SQL and its parameters: the
            # message) nor the whole address (a u- address unsubscribes whoever has it).
            said = describe(exc) if isinstance(exc, DBAPIError) else type(exc).__name__
            if is_transient(exc):
                log.warning("inbound mail for %s not stored, the database is away: %s", who, said)
            else:
                log.error("inbound mail for %s not stored: %s", who, said)
            return TRY_AGAIN
        delivery = tagged.ident if tagged and tagged.role == Role.bounce else None
        log.info(
            "inbound mail for %s: %s",
            who,
            handled.meaning.value,
            extra={"delivery": delivery, "meaning": handled.meaning.value},
        )
        return STORED


def _lmtp(server: SMTP) -> bool:
    return isinstance(server, InboundProtocol) and server.lmtp


def _protocol(
    handler: InboundHandler, settings: Settings, loop: asyncio.AbstractEventLoop
) -> InboundProtocol:
    return InboundProtocol(
        handler,
        data_size_limit=settings.inbound_max_bytes,  # SIZE in EHLO/LHLO, 552 beyond it
        enable_SMTPUTF8=True,
        hostname=settings.bounce_domain or socket.gethostname(),
        timeout=IDLE_TIMEOUT_SECONDS,
        loop=loop,
    )


async def serve_inbound(
    db: Database,
    settings: Settings,
    host: str,
    port: int,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Listen on ``host``:``port`` until ``stop`` is set; ``ready`` is set once listening."""
    loop = asyncio.get_running_loop()
    handler = InboundHandler(db, settings)
    server = await loop.create_server(lambda: _protocol(handler, settings, loop), host, port)
    log.info("inbound SMTP/LMTP listener on %s port %d", host, port)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        server.close()
        with suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), CLOSE_SECONDS)
