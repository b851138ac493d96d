"""Email addresses and the personal fields that travel into mail headers.

Addresses are validated with email-validator (syntax only: no DNS lookups, so imports stay
fast and offline) and stored lower-cased, so ``Nino@Example.ge`` and ``nino@example.ge`` are one
subscriber. Names have CR, LF and other control characters folded to spaces: they end up in
``To:`` headers, and folding keeps the person's name instead of rejecting the whole row.
"""

import re
import unicodedata
from email.utils import parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from tidings.errors import InvalidAddress, InvalidInput

NAME_LIMIT = 200
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


def normalise_email(raw: str) -> str:
    """The address in its stored form; raises :class:`InvalidAddress` with the reason."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidAddress("email is empty")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{candidate!r}: {exc}") from None
    return result.normalized.lower()


def clean_name(raw: str | None) -> str | None:
    """A display name with control characters (CR, LF, ...) folded to spaces; None if empty."""
    if raw is None:
        return None
    folded = _SPACES.sub(" ", _CONTROL_RUN.sub(" ", unicodedata.normalize("NFC", raw))).strip()
    return folded[:NAME_LIMIT] or None


def clean_locale(raw: str | None) -> str | None:
    """A BCP 47-ish locale tag such as ``ka`` or ``en-GB``; None if empty."""
    value = (raw or "").strip()
    if not value:
        return None
    if not _LOCALE.match(value):
        raise InvalidInput(f"locale {value!r} is not a language tag such as en or ka-GE")
    return value.replace("_", "-")


def clean_timezone(raw: str | None) -> str | None:
    """An IANA time zone name such as ``Asia/Tbilisi``; None if empty."""
    value = (raw or "").strip()
    if not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"timezone {value!r} is not an IANA time zone") from None
    return value


def parse_mailbox(raw: str) -> tuple[str | None, str]:
    """Split ``"Name <address>"`` (or a bare address) into a clean name and address."""
    if "\r" in raw or "\n" in raw:
        raise InvalidAddress("an address may not contain line breaks")
    name, address = parseaddr(raw)
    if not address:
        raise InvalidAddress(f"{raw!r} is not 'Name <address>' or an address")
    return clean_name(name), normalise_email(address)
