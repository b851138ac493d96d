"""Polling an IMAP mailbox for the mail that comes back (TIDINGS_BOUNCE_IMAP_URL), for a
bounce domain whose mail lands in a mailbox rather than at ``tidings inbound``.

Each message of the folder is read (without marking it seen), handed to the inbound service
and, once stored, moved to TIDINGS_BOUNCE_IMAP_DONE_FOLDER: handled mail is kept, never
deleted, and a message is handled once (the next poll no longer sees it). A message larger
than TIDINGS_INBOUND_MAX_BYTES is not fetched: it is flagged for a person to look at and left
where it is. A database that cannot be reached stops the poll and leaves the rest in place
for the next one. Every wait is bounded by a socket timeout, every read by a size; the
password never reaches a log or an error message.
"""

import imaplib
import logging
import re
import ssl
from contextlib import suppress
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.errors import is_transient
from tidings.errors import ConfigError
from tidings.inbound.events import Handled
from tidings.inbound.service import handle_message
from tidings.mail.returnpath import expected_domain, read_address

log = logging.getLogger(__name__)

IMAPS_PORT = 993
#: Seconds any one connect, read or write may take.
TIMEOUT_SECONDS = 30.0
#: UIDs whose sizes are asked for in one command.
BATCH = 50
#: Messages handled in one poll at most: a full mailbox is worked off over several polls.
POLL_LIMIT = 500
CHANNEL = "imap"
#: Headers that name the envelope recipient, in the order they are believed.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To")

_FETCHED = re.compile(rb"UID (\d+)|RFC822\.SIZE (\d+)|FLAGS \(([^)]*)\)")
_DELIMITER = re.compile(rb'\) (?:NIL|"((?:\\.|[^"\\])*)")')


@dataclass(frozen=True)
class Mailbox:
    """Where to poll: parsed from ``imaps://user:password@host[:port]/FOLDER``."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str

    def __str__(self) -> str:
        """For logs: no user, no password."""
        return f"imaps://{self.host}:{self.port}/{self.folder}"


@dataclass
class PollResult:
    handled: list[Handled] = field(default_factory=list)
    #: Over TIDINGS_INBOUND_MAX_BYTES: flagged and left in place.
    too_large: int = 0
    #: Left in place after an error that was not the database's (logged with its trace).
    failed: int = 0
    #: The database could not be reached: the poll stopped, the rest waits for the next.
    database_away: bool = False


def parse_imap_url(url: str) -> Mailbox:
    """The mailbox of TIDINGS_BOUNCE_IMAP_URL; user and password may be percent-encoded."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "imaps":
        raise ConfigError("TIDINGS_BOUNCE_IMAP_URL must start with imaps:// (TLS only)")
    try:
        port = parts.port or IMAPS_PORT
    except ValueError as exc:
        raise ConfigError("TIDINGS_BOUNCE_IMAP_URL has a port that is not a number") from exc
    if not parts.hostname or parts.username is None or parts.password is None:
        raise ConfigError("TIDINGS_BOUNCE_IMAP_URL needs imaps://user:password@host/FOLDER")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return Mailbox(parts.hostname, port, unquote(parts.username), unquote(parts.password), folder)


def poll_mailbox(
    db: Database, settings: Settings, *, ca_file: Path | None = None, limit: int = POLL_LIMIT
) -> PollResult:
    """Handle the messages waiting in the mailbox once. ``ca_file``: trust this certificate
    (a test's own) instead of the system's store. Raises ConnectionError when the mailbox
    cannot be reached or logged in to, ConfigError when the URL is unset or malformed."""
    if settings.bounce_imap_url is None:
        raise ConfigError("TIDINGS_BOUNCE_IMAP_URL is not set")
    mailbox = parse_imap_url(settings.bounce_imap_url.get_secret_value())
    done = _folder_name(settings.bounce_imap_done_folder)
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        connection = imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=context, timeout=TIMEOUT_SECONDS
        )
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ConnectionError(f"{mailbox}: cannot connect: {exc}") from None
    try:
        session = _Session(connection, db, settings, limit)
        return session.poll(mailbox, done)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ConnectionError(f"{mailbox}: {exc}") from None
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            connection.logout()


class _Session:
    """One logged-in connection's work: the folder's messages, one at a time."""

    def __init__(
        self, connection: imaplib.IMAP4_SSL, db: Database, settings: Settings, limit: int
    ) -> None:
        self.imap = connection
        self.db = db
        self.settings = settings
        self.limit = limit
        self.result = PollResult()

    def poll(self, mailbox: Mailbox, done: str) -> PollResult:
        self.imap.login(mailbox.user, mailbox.password)
        _ok(self.imap.capability())
        capabilities = {word.upper() for word in self.imap.capabilities}
        self.move = "MOVE" in capabilities
        self.uidplus = "UIDPLUS" in capabilities
        self.done = _quoted(self._ensure_folder(done))
        _ok(self.imap.select(_quoted(mailbox.folder)))
        uids = _ok(self.imap.uid("SEARCH", "UNDELETED"))[0].split()
        for start in range(0, len(uids), BATCH):
            if not self._batch(uids[start : start + BATCH]):
                break
        if not self.move and not self.uidplus:
            self.imap.expunge()  # without UID EXPUNGE: every message marked \Deleted goes
        log.info(
            "%s: %d handled, %d too large, %d failed%s",
            mailbox,
            len(self.result.handled),
            self.result.too_large,
            self.result.failed,
            "; the database is away" if self.result.database_away else "",
        )
        return self.result

    def _ensure_folder(self, name: str) -> str:
        """The done folder with the server's hierarchy delimiter, created when missing."""
        listed = _ok(self.imap.list('""', '""'))
        found = _DELIMITER.search(listed[0] or b"") if listed and listed[0] else None
        delimiter = found.group(1).decode() if found and found.group(1) else "/"
        name = name.replace("/", delimiter)
        if _ok(self.imap.list('""', _quoted(name))) in ([], [None]):
            _ok(self.imap.create(_quoted(name)))
            self.imap.subscribe(_quoted(name))  # shown by mail clients; a refusal is harmless
        return name

    def _batch(self, uids: list[bytes]) -> bool:
        """Handle one batch; False when the poll must stop (the limit, or the database)."""
        listed = _ok(self.imap.uid("FETCH", b",".join(uids).decode(), "(RFC822.SIZE FLAGS)"))
        for uid, size, flags in _sizes(listed):
            if len(self.result.handled) >= self.limit:
                return False
            if size > self.settings.inbound_max_bytes:
                self._too_large(uid, size, flags)
                continue
            raw = self._body(uid)
            if raw is None:  # expunged meanwhile by another client
                continue
            if len(raw) > self.settings.inbound_max_bytes:
                self._too_large(uid, len(raw), flags)
                continue
            if not self._handle(uid, raw):
                return False
        return True

    def _body(self, uid: str) -> bytes | None:
        """The message's bytes, never more than one byte over the limit (a partial fetch,
        so a server that misstated the size cannot make us read more)."""
        most = self.settings.inbound_max_bytes + 1
        fetched = _ok(self.imap.uid("FETCH", uid, f"(BODY.PEEK[]<0.{most}>)"))
        for item in fetched:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        return None

    def _too_large(self, uid: str, size: int, flags: str) -> None:
        self.result.too_large += 1
        if "\\flagged" not in flags.lower():
            log.warning(
                "message UID %s (%d bytes) is over the size limit: flagged, left", uid, size
            )
            _ok(self.imap.uid("STORE", uid, "+FLAGS.SILENT", "(\\Flagged)"))

    def _handle(self, uid: str, raw: bytes) -> bool:
        try:
            handled = handle_message(
                self.db, self.settings, raw, _recipient(self.settings, raw), CHANNEL
            )
        except Exception as exc:
            if is_transient(exc):
                log.warning("the database is away (%s); the mailbox waits for the next poll", exc)
                self.result.database_away = True
                return False
            log.exception("message UID %s could not be handled; it stays in the mailbox", uid)
            self.result.failed += 1
            return True
        self.result.handled.append(handled)
        self._move(uid)
        return True

    def _move(self, uid: str) -> None:
        if self.move:
            _ok(self.imap.uid("MOVE", uid, self.done))
            return
        _ok(self.imap.uid("COPY", uid, self.done))
        _ok(self.imap.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)"))
        if self.uidplus:
            _ok(self.imap.uid("EXPUNGE", uid))


def _ok(answer: tuple[str, list]) -> list:  # type: ignore[type-arg]
    """The data of an OK answer; anything else is an error (the server's words)."""
    status, data = answer
    if status != "OK":
        raise imaplib.IMAP4.error(f"{status}: {data[-1] if data else ''!r}")
    return data


def _sizes(listed: list) -> list[tuple[str, int, str]]:  # type: ignore[type-arg]
    """(UID, RFC822.SIZE, FLAGS) of each line of a FETCH answer."""
    found = []
    for item in listed:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid = size = None
        flags = ""
        for match in _FETCHED.finditer(line):
            if match.group(1):
                uid = match.group(1).decode()
            elif match.group(2):
                size = int(match.group(2))
            else:
                flags = match.group(3).decode(errors="replace")
        if uid is not None and size is not None:
            found.append((uid, size, flags))
    return found


def _recipient(settings: Settings, raw: bytes) -> str | None:
    """The first Delivered-To, X-Original-To or To address that verifies; None lets the
    service guess (and keep what was addressed)."""
    domain = expected_domain(settings.bounce_domain)
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        values = [str(v) for name in RECIPIENT_HEADERS for v in headers.get_all(name) or []]
        addresses = [address for _name, address in getaddresses(values) if address]
    except Exception:  # a malformed header: the service reads the message itself
        return None
    for address in addresses[:50]:
        if read_address(settings.secret, address, domain) is not None:
            return address
    return None


def _folder_name(name: str) -> str:
    name = name.strip()
    if not name or not name.isascii() or any(ord(c) < 32 for c in name):
        raise ConfigError("TIDINGS_BOUNCE_IMAP_DONE_FOLDER must be a plain ASCII folder name")
    return name


def _quoted(name: str) -> str:
    """An IMAP quoted string (the folder names are ASCII, checked before)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
