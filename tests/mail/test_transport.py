"""The SMTP transport's error mapping, against a real aiosmtpd server: what each answer (or
silence, or dropped connection) becomes, and that the connection stays usable after a refusal.

Permanent (5xx) means failed for good; transient (4xx, no connection) means try again;
uncertain means the message data may have been delivered before the connection broke.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, Session

from tests.crowdedsmtp import crowded_server
from tests.smtpserver import RecordingHandler, free_port, smtp_server
from tidings.config import SmtpTarget
from tidings.mail.transport import (
    ConnectRefusedError,
    DeliveryError,
    PermanentDeliveryError,
    SmtpConnection,
    SmtpReply,
    TransientDeliveryError,
    UncertainDeliveryError,
    is_permanent,
    send_within,
)

SENDER = "news@example.ge"
MESSAGE = b"Subject: hello\r\nFrom: news@example.ge\r\nTo: reader@example.ge\r\n\r\nHello.\r\n"
TIMEOUT = 5.0


def _connection(port: int, username: str | None = None) -> SmtpConnection:
    password = "secret" if username else None
    return SmtpConnection(SmtpTarget("127.0.0.1", port, "none", username, password), TIMEOUT)


async def _send(connection: SmtpConnection, recipient: str) -> SmtpReply:
    try:
        return await connection.send(SENDER, recipient, MESSAGE)
    finally:
        await connection.close()


@contextmanager
def _server(handler: RecordingHandler, **options: Any) -> Iterator[int]:
    """A server with options ``smtp_server`` does not take (SMTPUTF8, authentication)."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _error_of(port: int, recipient: str = "reader@example.ge") -> DeliveryError:
    with pytest.raises(DeliveryError) as raised:
        asyncio.run(_send(_connection(port), recipient))
    return raised.value


def test_an_accepted_message_returns_the_servers_reply() -> None:
    with smtp_server() as (handler, port):
        reply = asyncio.run(_send(_connection(port), "reader@example.ge"))
    assert reply == SmtpReply(250, "2.0.0 Ok: queued")
    assert handler.recipients() == ["reader@example.ge"]


@pytest.mark.parametrize(
    ("rcpt_reply", "kind", "code"),
    [
        ("550 5.1.1 <gone@example.ge>: no such user", PermanentDeliveryError, 550),
        ("553 5.1.3 bad address", PermanentDeliveryError, 553),
        ("554 5.7.1 relay denied", PermanentDeliveryError, 554),
        ("450 4.2.1 mailbox busy", TransientDeliveryError, 450),
        ("451 4.3.0 try again later", TransientDeliveryError, 451),
        ("452 4.5.3 too many recipients", TransientDeliveryError, 452),
    ],
)
def test_a_refused_recipient_maps_by_its_reply_code(
    rcpt_reply: str, kind: type[DeliveryError], code: int
) -> None:
    with smtp_server() as (handler, port):
        handler.behaviour.rcpt_replies["gone@example.ge"] = rcpt_reply
        error = _error_of(port, "gone@example.ge")
    assert type(error) is kind  # never uncertain: no data was sent
    assert (error.code, error.message) == (code, rcpt_reply.split(" ", 1)[1])
    assert is_permanent(error.code) is (kind is PermanentDeliveryError)


@pytest.mark.parametrize(
    ("data_reply", "kind"),
    [("554 5.6.0 message refused", PermanentDeliveryError), ("452 4.3.1 disk full", None)],
)
def test_a_refused_message_maps_by_its_reply_code(
    data_reply: str, kind: type[DeliveryError] | None
) -> None:
    """A 4xx after DATA was answered by the server: the message was not taken (transient,
    not uncertain)."""
    with smtp_server() as (handler, port):
        handler.behaviour.data_reply = data_reply
        error = _error_of(port)
    assert type(error) is (kind or TransientDeliveryError)
    assert error.code == int(data_reply[:3])


class _PeerHandler(RecordingHandler):
    """Records which client connection (its address) sent each RCPT, and every RSET."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[object] = []

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.peers.append(session.peer)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_RSET(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.commands.append("RSET")
        return "250 OK"


def test_the_connection_is_reused_after_a_refusal() -> None:
    """A refused recipient resets the transaction (RSET); the next one is sent on the same
    connection."""
    handler = _PeerHandler()
    handler.behaviour.rcpt_replies["gone@example.ge"] = "550 5.1.1 no such user"
    with _server(handler) as port:
        connection = _connection(port)

        async def two() -> SmtpReply:
            try:
                with pytest.raises(PermanentDeliveryError):
                    await connection.send(SENDER, "gone@example.ge", MESSAGE)
                return await connection.send(SENDER, "reader@example.ge", MESSAGE)
            finally:
                await connection.close()

        reply = asyncio.run(two())
    assert reply.code == 250
    assert handler.recipients() == ["reader@example.ge"]
    assert handler.commands == ["RCPT gone@example.ge", "RSET", "RCPT reader@example.ge"]
    assert len(handler.peers) == 2 and handler.peers[0] == handler.peers[1]


def test_a_connection_dropped_after_data_is_uncertain() -> None:
    with smtp_server() as (handler, port):
        handler.behaviour.drop_after_data = True
        error = _error_of(port)
    assert type(error) is UncertainDeliveryError
    assert error.code == 0 and error.message.startswith("connection lost: ")


def test_no_server_is_transient_and_certain() -> None:
    error = _error_of(free_port())  # nothing listens there
    assert type(error) is ConnectRefusedError  # transient, and nothing was offered
    assert isinstance(error, TransientDeliveryError)
    assert error.code == 0 and error.message.startswith("cannot connect: ")


def test_a_421_greeting_refuses_the_connection_before_any_message() -> None:
    with crowded_server(limit=0) as (handler, _crowd, port):
        connection = _connection(port)
        with pytest.raises(ConnectRefusedError) as refused:
            asyncio.run(connection.open())
    assert refused.value.code == 421
    assert handler.commands == []


def test_open_connects_once_and_the_connection_serves_the_next_send() -> None:
    with crowded_server(limit=1) as (handler, crowd, port):

        async def scenario() -> SmtpReply:
            await connection.open()
            await connection.open()  # already open: no second connection
            return await _send(connection, "reader@example.ge")

        connection = _connection(port)
        reply = asyncio.run(scenario())
    assert reply.code == 250
    assert crowd.refused == 0
    assert handler.recipients() == ["reader@example.ge"]


def test_a_server_too_slow_to_answer_is_uncertain_within_the_deadline() -> None:
    """The per-read timeout would let a dripping server hold the send forever: the overall
    deadline ends it, and the message may have been taken."""
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 3.0
        connection = _connection(port)

        async def slow() -> None:
            try:
                await send_within(connection, SENDER, "reader@example.ge", MESSAGE, 0.5)
            finally:
                await connection.close()

        with pytest.raises(UncertainDeliveryError) as raised:
            asyncio.run(slow())
    assert raised.value.code == 0
    assert "no complete answer within 0 s" in raised.value.message  # 0.5 s, as "%.0f"


def test_a_non_ascii_address_without_smtputf8_fails_alone() -> None:
    handler = RecordingHandler()
    with _server(handler, enable_SMTPUTF8=False) as port:
        error = _error_of(port, "ნინო@example.ge")
    assert type(error) is PermanentDeliveryError
    assert (error.code, error.message[:5]) == (553, "5.6.7")
    assert handler.caught == []


def test_a_non_ascii_address_goes_out_where_smtputf8_is_offered() -> None:
    handler = RecordingHandler()
    with _server(handler, enable_SMTPUTF8=True) as port:
        reply = asyncio.run(_send(_connection(port), "ნინო@example.ge"))
    assert reply.code == 250
    assert handler.recipients() == ["ნინო@example.ge"]


def _refuse_everyone(*_args: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


def test_refused_credentials_are_permanent() -> None:
    """The server refuses the login (535): no retry will fix the configuration."""
    handler = RecordingHandler()
    refusing = _server(handler, authenticator=_refuse_everyone, auth_require_tls=False)
    with refusing as port, pytest.raises(PermanentDeliveryError) as raised:
        asyncio.run(_send(_connection(port, username="tidings"), "reader@example.ge"))
    assert raised.value.code == 535
    assert handler.caught == []


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        (0, False),
        (250, False),
        (421, False),
        (499, False),
        (500, True),
        (554, True),
        (599, True),
        (600, False),
    ],
)
def test_only_5xx_codes_are_permanent(code: int, permanent: bool) -> None:
    assert is_permanent(code) is permanent


class _MailRefusingHandler(RecordingHandler):
    """Answers MAIL FROM with a 421 slow-down."""

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        return "421 4.7.0 slow down"


def test_each_error_names_the_stage_it_came_at() -> None:
    """Whom a reply speaks about (the relay, or the recipient's domain) is read from the
    error's stage, not from how the transport happened to raise it."""
    with smtp_server() as (handler, port):
        handler.behaviour.rcpt_replies["busy@example.ge"] = "451 4.7.1 rate limited"
        assert _error_of(port, "busy@example.ge").stage == "rcpt"
        handler.behaviour.data_reply = "451 4.7.1 rate limited"
        assert _error_of(port).stage == "data"
        handler.behaviour.data_reply = None
        handler.behaviour.drop_after_data = True
        assert _error_of(port).stage == "data"
    with _server(_MailRefusingHandler()) as port:
        assert _error_of(port).stage == "mail"
    with crowded_server(limit=0) as (_handler, _crowd, port):
        assert _error_of(port).stage == "connect"
    assert _error_of(free_port()).stage == "connect"  # nothing listens there
    assert DeliveryError(451, "4.7.1 later").stage is None  # a deadline: not known
