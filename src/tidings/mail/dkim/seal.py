"""Private keys at rest: sealed with Fernet under a key derived from TIDINGS_SECRET_KEY.

Every worker on every host reads the keys from the shared database, so that is where they
live; sealing them means a dump of the database alone does not give them away. The Fernet
key is HKDF-SHA256 of the secret key with an info string of its own, so it is unrelated to
every other use of the secret (link tokens, return paths).
"""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tidings.errors import ConfigError

#: The HKDF info string: this key seals DKIM private keys and nothing else.
PURPOSE = b"tidings/dkim-private-key/v1"


def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=SHA256(), length=32, salt=None, info=PURPOSE).derive(
        secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret: str, private_pem: bytes) -> str:
    """The sealed form of a private key (ASCII, for a text column)."""
    return _fernet(secret).encrypt(private_pem).decode("ascii")


def unseal(secret: str, sealed: str) -> bytes:
    """The private key's PEM; :class:`ConfigError` if ``secret`` did not seal it
    (TIDINGS_SECRET_KEY changed since the key was made, or the row was altered)."""
    try:
        return _fernet(secret).decrypt(sealed.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise ConfigError(
            "A DKIM key was sealed with another secret key (has TIDINGS_SECRET_KEY changed?): "
            "make a new key for its domain and publish its record."
        ) from None
