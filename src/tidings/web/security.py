"""Web security helpers: CSRF tokens and the console's session cookie.

CSRF tokens are signed and bound to something the attacker's page cannot read: the console
session, the signed link of a subscriber page, or a random cookie on the sign-up page.
"""

import secrets
from dataclasses import dataclass

from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 12 * 3600
SESSION_COOKIE = "tidings_session"
SESSION_MAX_AGE = 12 * 3600
FORM_COOKIE = "tidings_form"


def _signer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"tidings.web.{purpose}")


def csrf_token(secret: str, binding: str) -> str:
    """A form token valid only together with ``binding``."""
    return str(_signer(secret, "csrf").dumps(binding))


def csrf_ok(secret: str, binding: str | None, token: object) -> bool:
    if not binding or not isinstance(token, str):
        return False
    try:
        value = _signer(secret, "csrf").loads(token, max_age=CSRF_MAX_AGE)
    except BadSignature:
        return False
    return secrets.compare_digest(str(value), binding)


def set_form_cookie(response: Response, binding: str, secure: bool) -> None:
    """The random CSRF binding of pages used before sign-in (sign-up, sign-in)."""
    response.set_cookie(
        FORM_COOKIE, binding, httponly=True, samesite="strict", secure=secure, max_age=CSRF_MAX_AGE
    )


@dataclass(frozen=True)
class SessionData:
    user_id: int
    session_id: str
    fingerprint: str


def session_cookie(secret: str, user_id: int, fingerprint: str) -> str:
    """A new signed session: a random id (the CSRF binding) and the password fingerprint."""
    return str(
        _signer(secret, "session").dumps(
            {"u": user_id, "s": secrets.token_urlsafe(16), "f": fingerprint}
        )
    )


def read_session(secret: str, cookie: str | None) -> SessionData | None:
    if not cookie:
        return None
    try:
        value = _signer(secret, "session").loads(cookie, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(value, dict):
        return None
    user_id, session_id, fingerprint = value.get("u"), value.get("s"), value.get("f")
    if not isinstance(user_id, int) or not isinstance(session_id, str):
        return None
    if not isinstance(fingerprint, str):
        return None
    return SessionData(user_id, session_id, fingerprint)
