"""Email addresses and the personal fields that travel into mail headers.

Addresses are validated with email-validator (syntax only: no DNS lookups, so imports stay
fast and offline) and stored lower-cased, so ``Nino@Example.ge`` and ``nino@example.ge`` are one
subscriber. Internationalised domains are stored in their ASCII (IDNA) form, so
``nino@пример.рф`` and ``nino@xn--e1afmkfd.xn--p1ai`` are one subscriber and every SMTP
server can take the address. A non-ASCII local part (``нино@example.ge``) is refused at the door:
it needs SMTPUTF8 from every relay on the way and UTF-8 headers in every message, and most
relays do not offer it, so such an address would be accepted only to fail at every send.

Names have CR, LF and other control characters folded to spaces: they end up in ``To:``
headers, and folding keeps the person's name instead of rejecting the whole row.
"""

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from tidings.config import Settings
from tidings.errors import InvalidAddress, InvalidInput

NAME_LIMIT = 200
#: The longest part before the @-sign (RFC 5321 4.5.3.1.1).
LOCAL_PART_LIMIT = 64
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
#: ``Name <address>``: the address is the last angle-bracketed part, the name all before it.
_MAILBOX = re.compile(r"^(?P<name>.*?)\s*<(?P<address>[^<>]*)>$", re.DOTALL)
#: Characters that make a display name need quotes (RFC 5322 specials).
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


#: The plain form nearly every address takes: an ASCII dot-atom before the @-sign (RFC 5322
#: atext, dots only between characters).
_PLAIN_LOCAL = re.compile(
    r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+)*\Z"
)
#: The longest address, in UTF-8 octets, in each of the forms email-validator checks.
ADDRESS_LIMIT = 254
#: Distinct domains whose validation is remembered: an import of a million addresses has
#: a few thousand.
DOMAIN_CACHE_SIZE = 65_536


@lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """A domain's (ASCII, Unicode) forms as email-validator gives them, or None if it refuses
    the domain: validated once per distinct domain, since it is most of an address's cost."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return result.ascii_domain, result.domain


def _plain_address(candidate: str) -> str | None:
    """``candidate`` in its stored form when it is a plain address (ASCII dot-atom local part,
    a domain email-validator accepts, every length within its limits), else None: such an
    address gets exactly what :func:`validate_email` would give it, without its per-address
    cost. Anything else (and every refusal, for its reason) goes the whole way."""
    local, at, domain = candidate.rpartition("@")
    if not at or len(local) > LOCAL_PART_LIMIT or not _PLAIN_LOCAL.match(local):
        return None
    forms = _domain_forms(domain)
    if forms is None:
        return None
    ascii_domain, unicode_domain = forms
    for address in (candidate, f"{local}@{unicode_domain}", f"{local}@{ascii_domain}"):
        if len(address.encode()) > ADDRESS_LIMIT:
            return None
    return f"{local}@{ascii_domain}".lower()


def normalise_email(raw: str) -> str:
    """The address in its stored form; raises :class:`InvalidAddress` with the reason."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidAddress("email is empty")
    plain = _plain_address(candidate)
    if plain is not None:
        return plain
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{candidate!r}: {exc}") from None
    if result.ascii_email is None:  # pragma: no cover - allow_smtputf8=False guarantees it
        raise InvalidAddress(f"{candidate!r}: only ASCII is supported before the @-sign")
    # RFC 5321's limit, which email-validator checks only in its strict mode (2.2 and later):
    # checked here, whichever version is installed. Relays refuse longer ones at RCPT.
    local = result.ascii_email.rpartition("@")[0]
    if len(local) > LOCAL_PART_LIMIT:
        raise InvalidAddress(
            f"{candidate!r}: The email address is too long before the @-sign "
            f"({len(local)} characters, at most {LOCAL_PART_LIMIT})"
        )
    return result.ascii_email.lower()


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
    if not _is_zone(value):
        raise InvalidInput(f"timezone {value!r} is not an IANA time zone")
    return value


@lru_cache(maxsize=1024)
def _is_zone(name: str) -> bool:
    """Whether ``name`` is a zone the zone database knows (remembered per name: an import asks
    about the same few zones a million times)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_mailbox(raw: str) -> tuple[str | None, str]:
    """Split ``"Name" <address>``, ``Name <address>`` or a bare address into a clean name and
    address; the inverse of :func:`format_mailbox` (an unquoted comma or @ is kept too)."""
    if "\r" in raw or "\n" in raw:
        raise InvalidAddress("an address may not contain line breaks")
    found = _MAILBOX.match(raw.strip())
    if found is None:
        return None, normalise_email(raw)
    name = found["name"].strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        name = _QUOTED_PAIR.sub(r"\1", name[1:-1])
    if not found["address"].strip():
        raise InvalidAddress(f"{raw!r} is not 'Name <address>' or an address")
    return clean_name(name), normalise_email(found["address"])


def format_mailbox(name: str | None, address: str) -> str:
    """``Name <address>`` for people and forms, the name quoted when it holds a comma, an @
    or another special (``"Daily, The Paper" <x@example.ge>``), so it parses back the same."""
    if not name:
        return address
    if _SPECIALS.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{name} <{address}>"


def _setting_default(name: str) -> int:
    default = Settings.model_fields[name].default
    assert isinstance(default, int)
    return default


@dataclass(frozen=True)
class AttributeLimits:
    """How many attributes one subscriber may have, and how much JSON all of them may take."""

    count: int = _setting_default("max_attributes")
    size: int = _setting_default("max_attributes_bytes")

    @classmethod
    def of(cls, settings: Settings) -> "AttributeLimits":
        return cls(settings.max_attributes, settings.max_attributes_bytes)


#: The limits of the settings' defaults, for callers without settings at hand.
DEFAULT_LIMITS = AttributeLimits()


def attributes_json(attributes: dict[str, Any], limits: AttributeLimits) -> str:
    """The attributes as compact JSON, or :class:`InvalidInput` if there are too many of them,
    they are too large (a 10,000-column CSV must not store megabytes per person), or a name
    or value holds a NUL character (PostgreSQL cannot store one in JSON, nor in text)."""
    for key, value in attributes.items():
        if "\x00" in key or (isinstance(value, str) and "\x00" in value):
            raise InvalidInput(f"attribute {key!r} holds a NUL character, which cannot be stored")
    if len(attributes) > limits.count:
        raise InvalidInput(
            f"{len(attributes)} attributes; at most {limits.count} are kept per subscriber"
        )
    text = json.dumps(attributes, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    size = len(text.encode())
    if size > limits.size:
        raise InvalidInput(
            f"attributes take {size:,} bytes; at most {limits.size:,} are kept per subscriber"
        )
    return text
