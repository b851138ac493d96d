"""DKIM names, key pairs and the DNS record to publish.

A key pair is RSA 2048 (what every receiver checks) or Ed25519 (RFC 8463: short, fast, not yet
checked everywhere, so it goes beside an RSA key rather than instead of one). The record is
``SEL._domainkey.DOMAIN. IN TXT "v=DKIM1; k=rsa; p=..."``, its value split into quoted strings
of at most 255 characters, the most one TXT character-string may hold.
"""

import base64
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tidings.db.models import DkimAlgorithm
from tidings.errors import InvalidInput

RSA_BITS = 2048
#: The longest character-string a TXT record may hold (RFC 1035, 3.3).
TXT_PIECE = 255
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: RFC 6376 3.1: selector = sub-domain *("." sub-domain), a sub-domain being RFC 5321's
#: Let-dig [Ldh-str]; no underscore, so it cannot collide with ``_domainkey``.
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def valid_domain(raw: str) -> str:
    """``raw`` as a lower-case host name (a trailing dot dropped), or :class:`InvalidInput`."""
    domain = raw.strip().lower().removesuffix(".")
    if not domain.isascii():
        raise InvalidInput(f"{raw!r}: write an internationalised domain in its xn-- form")
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise InvalidInput(
            f"{raw!r} is not a domain name (labels of letters, digits and inner hyphens, "
            "separated by dots, such as example.org)"
        )
    return domain


def valid_selector(raw: str) -> str:
    """``raw`` as a lower-case DKIM selector (RFC 6376 3.1), or :class:`InvalidInput`."""
    selector = raw.strip().lower()
    labels = selector.split(".")
    if not _SELECTOR.match(selector) or any(len(x) > 63 for x in labels) or len(selector) > 63:
        raise InvalidInput(
            f"{raw!r} is not a DKIM selector (letters, digits and inner hyphens, up to 63, "
            "such as t202611)"
        )
    return selector


def default_selector(now: datetime, algorithm: DkimAlgorithm = DkimAlgorithm.rsa) -> str:
    """A selector named after the month the key was made, ``t202611`` for RSA and
    ``e202611`` for Ed25519: a rotation's new key gets a new name by itself, and a domain's
    two kinds of key made the same month do not collide."""
    prefix = "e" if algorithm == DkimAlgorithm.ed25519 else "t"
    return f"{prefix}{now:%Y%m}"


@dataclass(frozen=True)
class KeyPair:
    """A new key: its private PEM (PKCS#8, to be sealed) and the record's ``p=`` value."""

    algorithm: DkimAlgorithm
    private_pem: bytes
    public_key: str

    def __repr__(self) -> str:  # never the private key, whoever prints it
        return f"KeyPair({self.algorithm.value}, p={self.public_key[:12]}...)"


def generate(algorithm: DkimAlgorithm) -> KeyPair:
    """A fresh key pair: RSA 2048 (``p=`` the SubjectPublicKeyInfo DER, as RFC 6376 and
    every DKIM tool write it) or Ed25519 (``p=`` the raw 32-byte key, RFC 8463)."""
    private: PrivateKey
    if algorithm == DkimAlgorithm.rsa:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(algorithm, pem, base64.b64encode(public).decode("ascii"))


def load_private(pem: bytes) -> PrivateKey:
    """The key object of an unsealed PEM (RSA or Ed25519)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise InvalidInput("a DKIM key must be RSA or Ed25519")
    return key


@dataclass(frozen=True)
class DnsRecord:
    """The TXT record that publishes one key."""

    #: ``SEL._domainkey.DOMAIN.``, fully qualified.
    name: str
    #: The whole value, as a verifier reads it (its pieces joined).
    value: str

    @property
    def pieces(self) -> list[str]:
        """The value in strings of at most :data:`TXT_PIECE` characters."""
        return [self.value[i : i + TXT_PIECE] for i in range(0, len(self.value), TXT_PIECE)]

    @property
    def zone_line(self) -> str:
        """One line for a zone file: name, type, and the value as quoted strings."""
        quoted = " ".join(f'"{piece}"' for piece in self.pieces)
        return f"{self.name} IN TXT {quoted}"


def dns_record(domain: str, selector: str, algorithm: DkimAlgorithm, public_key: str) -> DnsRecord:
    """The record to publish for a key of ``domain`` under ``selector``."""
    return DnsRecord(
        f"{selector}._domainkey.{domain}.",
        f"v=DKIM1; k={algorithm.value}; p={public_key}",
    )
