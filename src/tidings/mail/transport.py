"""The SMTP transport the worker needs, and its aiosmtplib implementation.

The worker depends only on :class:`Transport`; tests and the benchmark use the same real
implementation against local servers.
"""

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiosmtplib

from tidings.config import ENV_PREFIX, Settings, SmtpTarget
from tidings.errors import ConfigError, TidingsError

#: A send's overall deadline, in units of the per-read SMTP timeout.
SEND_DEADLINE_TIMEOUTS = 3
#: Reply codes that refuse for good (RFC 5321, 4.2.1: 5yz); any other failure may pass.
PERMANENT_CODES = range(500, 600)

#: Where in the session a send failed: opening the connection (greeting, TLS, login), the
#: MAIL FROM (with its EHLO), the RCPT TO, or the DATA and its reply. A reply at "rcpt" or
#: "data" speaks about the recipient; before that, about the relay.
SmtpStage = Literal["connect", "mail", "rcpt", "data"]


def is_permanent(code: int) -> bool:
    """A 5xx reply: the message or the recipient is refused for good (the one home of this
    rule: the transport's errors, the retry policy and the mass-refusal guard all ask it)."""
    return code in PERMANENT_CODES


@dataclass(frozen=True)
class SmtpReply:
    code: int
    message: str


class DeliveryError(TidingsError):
    """A message was not accepted; ``stage`` says where (None: not known, a deadline say)."""

    def __init__(self, code: int, message: str, stage: SmtpStage | None = None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.stage = stage


class TransientDeliveryError(DeliveryError, ConnectionError):
    """4xx, timeout, refused or dropped connection: try again later."""


class UncertainDeliveryError(TransientDeliveryError):
    """The connection failed after the message data was sent: it may have been delivered."""


class ConnectRefusedError(TransientDeliveryError):
    """The server refused a new connection (a 4xx greeting or login reply, a refused or
    timed-out connect): nothing was offered on it, so another connection may send the
    message; the worker's pool shrinks (providers limit concurrent connections)."""


class PermanentDeliveryError(DeliveryError):
    """5xx: the server refused the message or the recipient for good."""


class Transport(Protocol):
    """Sends one message to one recipient."""

    async def open(self) -> None:
        """Connect now unless connected; :class:`ConnectRefusedError` when refused."""
        ...

    async def send(self, sender: str, recipient: str, message: bytes) -> SmtpReply: ...

    async def close(self) -> None: ...


def _raise_for_reply(code: int, message: str, stage: SmtpStage) -> None:
    if is_permanent(code):
        raise PermanentDeliveryError(code, message, stage)
    raise TransientDeliveryError(code, message, stage)


class SmtpConnection:
    """One long-lived SMTP connection: connects on first use, reconnects after a drop."""

    def __init__(self, target: SmtpTarget, timeout: float, local_hostname: str | None = None):
        self._target = target
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        target = self._target
        smtp = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.security == "tls",
            start_tls=target.security == "starttls",
            validate_certs=True,
            tls_context=ssl.create_default_context() if target.security != "none" else None,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
        )
        try:
            await smtp.connect()
            if target.username and target.password:
                await smtp.login(target.username, target.password)
        except aiosmtplib.SMTPResponseException as exc:
            await _quietly_close(smtp)
            if is_permanent(exc.code):
                raise PermanentDeliveryError(exc.code, exc.message, "connect") from exc
            raise ConnectRefusedError(exc.code, exc.message, "connect") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _quietly_close(smtp)
            raise ConnectRefusedError(0, f"cannot connect: {exc}", "connect") from exc
        self._smtp = smtp
        return smtp

    async def open(self) -> None:
        await self._connected()

    async def send(self, sender: str, recipient: str, message: bytes) -> SmtpReply:
        smtp = await self._connected()
        stage: SmtpStage = "mail"
        try:
            options = await _utf8_options(smtp, sender, recipient)
            encoding = "utf-8" if options else "ascii"
            await smtp.mail(sender, options=options, encoding=encoding)
            stage = "rcpt"
            await smtp.rcpt(recipient, encoding=encoding)
            stage = "data"
            response = await smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset_after_refusal(smtp)
            _raise_for_reply(exc.code, exc.message, stage)
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            error = UncertainDeliveryError if stage == "data" else TransientDeliveryError
            raise error(0, f"connection lost: {type(exc).__name__}: {exc}", stage) from exc
        return SmtpReply(response.code, response.message)

    async def _reset_after_refusal(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self.close()

    async def close(self) -> None:
        if self._smtp is not None:
            await _quietly_close(self._smtp)
            self._smtp = None


async def _utf8_options(smtp: aiosmtplib.SMTP, sender: str, recipient: str) -> list[str]:
    """``["SMTPUTF8"]`` for an address that is not ASCII (a row stored before addresses were
    normalised, say) when the server offers it; when it does not, that one delivery fails
    (553 5.6.7, RFC 6531) instead of an encoding error escaping into the worker's batch."""
    if sender.isascii() and recipient.isascii():
        return []
    if smtp.is_ehlo_or_helo_needed:
        await smtp.ehlo()  # the extensions are known only after EHLO
    if smtp.supports_extension("smtputf8"):
        return ["SMTPUTF8"]
    raise PermanentDeliveryError(
        553, "5.6.7 non-ASCII address, and the server does not offer SMTPUTF8", "rcpt"
    )


async def _quietly_close(smtp: aiosmtplib.SMTP) -> None:
    try:
        if smtp.is_connected:
            await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def configured_target(settings: Settings) -> SmtpTarget:
    """The configured SMTP server, or the built-in catcher on loopback when none is set
    (the one home of that fall-back; no links check: naming the relay sends nothing)."""
    if settings.smtp is None:
        return SmtpTarget("127.0.0.1", settings.catcher_port, "none", None, None)
    return settings.smtp


def smtp_target(settings: Settings) -> SmtpTarget:
    """The server to send through (:func:`configured_target`). Asked wherever sending starts
    (the worker's transports, one-off sends), so it refuses a real server when the mail's
    links would not work for readers (:func:`check_links`)."""
    check_links(settings)
    return configured_target(settings)


def is_local_host(host: str) -> bool:
    """``localhost`` (and ``*.localhost``, RFC 6761), or an IP literal that is loopback,
    private, link-local or unspecified (an IPv4-mapped IPv6 address judged as its IPv4):
    no reader outside can follow a link to it. Names are not resolved here."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified
    )


def insecure_links(base_url: str) -> bool:
    """Links under ``base_url`` are not fit for real mail: not https (RFC 8058 one-click
    needs an https URI), or on a host readers cannot reach (:func:`is_local_host`)."""
    parts = urlsplit(base_url)
    return parts.scheme != "https" or not parts.hostname or is_local_host(parts.hostname)


def links_refusal(base_url: str) -> str:
    """The one line that names the setting and both ways out."""
    return (
        f"{ENV_PREFIX}BASE_URL is {base_url}: links in real mail must be https on a public "
        "host (RFC 8058 one-click needs https); "
        f"set {ENV_PREFIX}ALLOW_INSECURE_LINKS=true to send anyway"
    )


def check_links(settings: Settings) -> None:
    """The safe-links rule, its one home: mail through a real SMTP server (anything but the
    built-in catcher) must carry https links on a public host, unless the admin said
    TIDINGS_ALLOW_INSECURE_LINKS=true; a :class:`ConfigError` with one line otherwise. A
    digest full of 127.0.0.1 links is worthless to its readers, and its one-click
    unsubscribe breaks the rule the large mailbox providers enforce."""
    if settings.smtp is None or settings.allow_insecure_links:
        return
    if insecure_links(settings.base_url):
        raise ConfigError(links_refusal(settings.base_url))


async def send_within(
    transport: Transport, sender: str, recipient: str, message: bytes, seconds: float
) -> SmtpReply:
    """Send with an overall deadline: the transport's timeout is per read, so a server that
    drips its reply a byte at a time would otherwise hold the connection forever."""
    try:
        return await asyncio.wait_for(transport.send(sender, recipient, message), seconds)
    except TimeoutError:
        await transport.close()
        raise UncertainDeliveryError(0, f"no complete answer within {seconds:.0f} s") from None
