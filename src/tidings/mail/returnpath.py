"""Addresses that carry a short signed token: the return path of each delivery (its bounces
come back to it) and each subscription's List-Unsubscribe mailto.

``b-<delivery id>-<mac>@BOUNCE_DOMAIN`` and ``u-<subscription id>-<mac>@BOUNCE_DOMAIN``: the
mac is 80 bits of an HMAC-SHA256 keyed per role from the secret key, in lower-case base32 (a
local part may be lower-cased on its way back). A bounce is matched by its address alone,
without reading its content; an address that does not verify names nobody.
"""

import base64
import enum
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass

MAC_BYTES = 10
_LOCAL = re.compile(r"^([bun])-([1-9][0-9]{0,18})-([a-z2-7]{16})$")


class Role(enum.StrEnum):
    #: The envelope sender of a delivery: names the delivery.
    bounce = "b"
    #: The List-Unsubscribe mailto: names the subscription.
    unsubscribe = "u"
    #: The envelope sender of a notice (confirmation mail): names the subscription.
    notice = "n"


@dataclass(frozen=True)
class Tagged:
    role: Role
    ident: int


@functools.lru_cache(maxsize=16)
def _key(secret: str, role: Role) -> bytes:
    """The MAC key of one role, derived once per secret (a worker tags two addresses per
    message, all under the same secret)."""
    return hashlib.sha256(f"tidings.return-path.{role.value}:{secret}".encode()).digest()


def _mac(secret: str, role: Role, ident: int) -> str:
    digest = hmac.digest(_key(secret, role), str(ident).encode("ascii"), "sha256")[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


def tagged_address(secret: str, role: Role, ident: int, domain: str) -> str:
    """The signed address of ``role`` for ``ident`` on ``domain``."""
    return f"{role.value}-{ident}-{_mac(secret, role, ident)}@{domain}"


def read_address(secret: str, address: str, domain: str | None = None) -> Tagged | None:
    """What a signed address names, or None for anything forged, altered or not ours (when
    ``domain`` is given, the address must be on it)."""
    local, at, host = address.strip().strip("<>").rpartition("@")
    if not at or (domain is not None and host.lower().rstrip(".") != domain.lower()):
        return None
    found = _LOCAL.match(local.lower())
    if found is None:
        return None
    role, ident = Role(found.group(1)), int(found.group(2))
    if not hmac.compare_digest(found.group(3), _mac(secret, role, ident)):
        return None
    return Tagged(role, ident)


def expected_domain(configured: str) -> str | None:
    """The domain an inbound address must be on: TIDINGS_BOUNCE_DOMAIN when it is set; None
    (any domain) when it is not, since each newsletter then uses its From domain and the mac
    alone tells ours from forged."""
    return configured.lower() or None


def bounce_domain(configured: str, from_address: str) -> str:
    """TIDINGS_BOUNCE_DOMAIN, or the From address's domain."""
    return (configured or from_address.rsplit("@", 1)[-1]).lower()
