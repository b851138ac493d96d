"""Signed tokens for links in mail, one salt per purpose so a token never works elsewhere.

Unsubscribe and preference links stay valid as long as the mail is kept; a confirmation
link expires, so an old double opt-in mail cannot activate a subscription months later.
"""

import enum
import functools

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer


class Purpose(enum.StrEnum):
    unsubscribe = "unsubscribe"
    preferences = "preferences"
    confirm = "confirm"


#: Lifetimes of the purposes whose tokens expire, in seconds.
LIFETIMES: dict[Purpose, int] = {Purpose.confirm: 7 * 24 * 3600}


@functools.lru_cache(maxsize=32)
def _serializer(secret: str, purpose: Purpose) -> URLSafeSerializer | URLSafeTimedSerializer:
    """One serializer per secret and purpose, kept: a digest signs two links per message."""
    salt = f"tidings.{purpose.value}"
    if purpose in LIFETIMES:
        return URLSafeTimedSerializer(secret, salt=salt)
    return URLSafeSerializer(secret, salt=salt)


def sign(secret: str, purpose: Purpose, subject_id: int) -> str:
    """A URL-safe token naming ``subject_id`` (a subscription) for ``purpose``."""
    return str(_serializer(secret, purpose).dumps(subject_id))


def unsign(secret: str, purpose: Purpose, token: str) -> int | None:
    """The id in a valid token of this purpose, or None for anything tampered, foreign or
    expired."""
    serializer = _serializer(secret, purpose)
    try:
        if isinstance(serializer, URLSafeTimedSerializer):
            value = serializer.loads(token, max_age=LIFETIMES[purpose])
        else:
            value = serializer.loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
