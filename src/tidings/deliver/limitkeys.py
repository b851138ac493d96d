"""What a sending limit applies to, by name: a relay (``host:port``) or a receiving domain
(lower-case, IDNA 2008 as stored addresses), checked and normalised the same way wherever
a name comes in (the admin's command, a recipient's address); and the WHERE clauses that
pick a key's limit row and its slots (one spelling for every statement)."""

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_

from tidings.db.models import LIMIT_NAME_LENGTH, SendLimit, SendLimitScope, SendLimitSlot
from tidings.errors import InvalidInput
from tidings.mail.addresses import normalise_email

#: A domain in its ASCII form: letters, digits, hyphens (and underscores, which some
#: receiving hosts carry), dot-separated labels of 1 to 63.
_DOMAIN = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\Z")
#: A relay host: a name as above, or an IP literal (IPv6 in brackets); the port in ASCII.
_RELAY = re.compile(r"(?:[a-z0-9_.-]{1,253}|\[[0-9a-f:.]{2,45}\]):([0-9]{1,5})\Z")


@dataclass(frozen=True)
class Key:
    """What a limit applies to: a relay or a receiving domain, by its normalised name."""

    scope: SendLimitScope
    name: str


def limit_where(key: Key) -> ColumnElement[bool]:
    """``key``'s row of ``send_limits``."""
    return and_(SendLimit.scope == key.scope.value, SendLimit.name == key.name)


def slots_where(key: Key) -> ColumnElement[bool]:
    """``key``'s rows of ``send_limit_slots``."""
    return and_(SendLimitSlot.scope == key.scope.value, SendLimitSlot.name == key.name)


def domain_name(text: str) -> str:
    """A receiving domain as limits key it: the part after the last @ (an address or a bare
    domain), lower-case, in its ASCII (IDNA) form; InvalidInput for one that is no domain."""
    name = text.rpartition("@")[2].strip().rstrip(".").lower()
    if name.isascii():
        ascii_name = name
    else:  # IDNA 2008, as stored addresses have it (straße.de is not strasse.de)
        try:
            ascii_name = normalise_email(f"postmaster@{name}").rpartition("@")[2]
        except InvalidInput:
            raise InvalidInput(f"{text[:80]!r} is not a domain name") from None
    if len(ascii_name) > 253 or not _DOMAIN.match(ascii_name):
        raise InvalidInput(f"{text[:80]!r} is not a domain name")
    return ascii_name


def relay_name(host: str, port: int) -> str:
    """A relay as limits key it: ``host:port``, the host lower-case."""
    return f"{host.strip().rstrip('.').lower()}:{port}"


def key_for(scope: str, name: str) -> Key:
    """The key an admin names (``relay smtp.example.com:587``, ``domain Gmail.com``)."""
    try:
        kind = SendLimitScope(scope)
    except ValueError:
        raise InvalidInput(f"scope must be relay or domain, not {scope!r}") from None
    if kind == SendLimitScope.domain:
        return Key(kind, domain_name(name))
    spelled = name.strip().rstrip(".").lower()
    found = _RELAY.match(spelled) if len(spelled) <= LIMIT_NAME_LENGTH else None
    port = int(found.group(1)) if found else 0
    if found is None or not 0 < port < 65536:
        raise InvalidInput(f"a relay is host:port (as in TIDINGS_SMTP_URL), not {name[:80]!r}")
    host = spelled.rpartition(":")[0]
    return Key(kind, relay_name(host, port))
