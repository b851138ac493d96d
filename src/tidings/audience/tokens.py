"""Signed tokens for links in mail, one salt per purpose so a token never works elsewhere."""

import enum

from itsdangerous import BadSignature, URLSafeSerializer


class Purpose(enum.StrEnum):
    unsubscribe = "unsubscribe"
    preferences = "preferences"
    confirm = "confirm"


def _serializer(secret: str, purpose: Purpose) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=f"tidings.{purpose.value}")


def sign(secret: str, purpose: Purpose, subject_id: int) -> str:
    """A URL-safe token naming ``subject_id`` (a subscription) for ``purpose``."""
    return str(_serializer(secret, purpose).dumps(subject_id))


def unsign(secret: str, purpose: Purpose, token: str) -> int | None:
    """The id in a valid token of this purpose, or None for anything tampered or foreign."""
    try:
        value = _serializer(secret, purpose).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
