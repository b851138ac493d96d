"""Web security helpers: CSRF tokens, the console's session cookie, and the headers every
response carries.

CSRF tokens are signed and bound to something the attacker's page cannot read: the console
session, the signed link of a subscriber page, or a random cookie on the sign-up page.

:class:`SecurityHeaders` is the one home of the response policy: no sniffing, framing only by
our own pages, a strict Content-Security-Policy, no referrer to other sites, and no caching
(pages hold readers' addresses and live links) unless a route says otherwise (the public
archive: :func:`public_headers`). The request body cap sits inside it (web.app), so even
a 413 carries the policy.
"""

import hashlib
import secrets
from dataclasses import dataclass

from fastapi.responses import PlainTextResponse, Response
from itsdangerous import BadData, BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def bound_token(secret: str, purpose: str, values: str) -> str:
    """A token of its own (a fresh nonce), signed for ``purpose``, that vouches for exactly
    ``values`` (a confirmation page's: what the editor was shown)."""
    digest = hashlib.sha256(values.encode()).hexdigest()
    return str(_signer(secret, purpose).dumps([secrets.token_urlsafe(18), digest]))


def bound_token_ok(secret: str, purpose: str, token: str, values: str, max_age: int) -> bool:
    """Whether ``token`` is a live :func:`bound_token` of this purpose for these values."""
    try:
        found = _signer(secret, purpose).loads(token, max_age=max_age)
    except BadData:
        return False
    if not (isinstance(found, list) and len(found) == 2 and isinstance(found[1], str)):
        return False
    return secrets.compare_digest(found[1], hashlib.sha256(values.encode()).hexdigest())


def set_form_cookie(response: Response, binding: str, secure: bool) -> None:
    """The random CSRF binding of pages used before sign-in (sign-up, sign-in)."""
    response.set_cookie(
        FORM_COOKIE, binding, httponly=True, samesite="strict", secure=secure, max_age=CSRF_MAX_AGE
    )


@dataclass(frozen=True)
class SessionData:
    user_id: int
    session_id: str
    generation: int


def session_cookie(secret: str, user_id: int, generation: int) -> str:
    """A new signed session: a random id (the CSRF binding) and the user's session generation,
    which sign-out, a password change or removal moves on, ending the session."""
    return str(
        _signer(secret, "session").dumps(
            {"u": user_id, "s": secrets.token_urlsafe(16), "g": generation}
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
    user_id, session_id, generation = value.get("u"), value.get("s"), value.get("g")
    if not isinstance(user_id, int) or not isinstance(session_id, str):
        return None
    if not isinstance(generation, int):
        return None
    return SessionData(user_id, session_id, generation)


#: Where the middleware leaves the per-response script nonce (``request.state.csp_nonce``).
NONCE_KEY = "csp_nonce"
#: Not HTML (JSON, text, feeds, files): nothing may load or frame it.
OTHER_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#: A rendered email shown as a page (the archive): its inline styles and remote images only.
MAIL_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
#: A rendered email inside a console frame: sandboxed as well (no scripts, forms or origin).
FRAMED_MAIL_POLICY = "sandbox; " + MAIL_POLICY


def page_policy(nonce: str | None) -> str:
    """Our pages: our own resources, scripts only with this response's nonce (none at all
    without one)."""
    scripts = f"'nonce-{nonce}'" if nonce else "'none'"
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'self'"
    )


#: Pages and feeds with no personal data (the public archive): browsers, shared caches and
#: feed readers may keep them for five minutes. Everything else is ``no-store``.
PUBLIC_CACHE = "public, max-age=300"
#: Our pages when cached for everyone: a nonce must never be shared, so no scripts at all.
PUBLIC_PAGE_POLICY = page_policy(None)


def public_headers(policy: str = PUBLIC_PAGE_POLICY) -> dict[str, str]:
    """Headers of a response without personal data that anyone may cache (the archive)."""
    return {"Cache-Control": PUBLIC_CACHE, "Content-Security-Policy": policy}


def _apply_policy(headers: MutableHeaders, nonce: str) -> None:
    """Fill in the policy; a route's own Cache-Control or CSP (framed mail) is kept."""
    html = headers.get("content-type", "").startswith("text/html")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Frame-Options", "SAMEORIGIN" if html else "DENY")
    csp = headers.get("content-security-policy")
    if csp is None:
        headers["Content-Security-Policy"] = page_policy(nonce) if html else OTHER_POLICY
    elif "frame-ancestors" not in csp:
        headers["Content-Security-Policy"] = f"{csp}; frame-ancestors 'self'"


class SecurityHeaders:
    """ASGI middleware: every HTTP response gets :func:`_apply_policy`, errors included.

    An unhandled error is answered here (a plain 500 with the headers) before it goes on to
    the server's error logging, which would otherwise answer without them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})[NONCE_KEY] = nonce
        started = False

        async def send_with_policy(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", []))
                _apply_policy(MutableHeaders(scope=message), nonce)
            await send(message)

        try:
            await self.app(scope, receive, send_with_policy)
        except Exception:
            if not started:
                answer = PlainTextResponse("Internal Server Error", status_code=500)
                await answer(scope, receive, send_with_policy)
            raise
