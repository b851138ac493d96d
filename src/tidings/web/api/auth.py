"""Bearer-token authentication and role checks for the API.

FastAPI reads and parses a request's body before it resolves the route's dependencies, so a
token check made only as a dependency comes after a stranger's body is in memory. The
:class:`TokenFirst` middleware therefore authenticates every request that carries a body
before a byte of it is read, and hands the holder on to the :func:`holder` dependency.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.access.accounts import role_allows
from tidings.access.apitokens import TokenHolder, token_holder
from tidings.db.engine import Database
from tidings.db.models import UserRole
from tidings.web.api.errors import ApiError, error_response
from tidings.web.deps import WebContext, web_context

_bearer = HTTPBearer(
    auto_error=False, description="An API token, made in the console's Access page"
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: Where :class:`TokenFirst` leaves the holder it found, in the request's state.
_HOLDER = "tidings_token_holder"


def authenticate(db: Database, secret: str | None) -> TokenHolder:
    """The holder of the bearer token ``secret``, or a 401 :class:`ApiError` saying why not."""
    if not secret:
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'", _CHALLENGE)
    found = token_holder(db, secret)
    if found is None:
        raise ApiError(401, "unauthenticated", "the token is not valid or was revoked", _CHALLENGE)
    return found


def _bearer_secret(headers: Headers) -> str | None:
    scheme, secret = get_authorization_scheme_param(headers.get("authorization"))
    return secret if scheme.lower() == "bearer" else None


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers


class TokenFirst:
    """ASGI middleware: a request with a body is authenticated before its body is read;
    a stranger gets 401 without the server reading (or holding) what they sent."""

    def __init__(self, app: ASGIApp, context: WebContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        if scope["type"] == "http" and _has_body(headers):
            try:
                found = await run_in_threadpool(
                    authenticate, self.context.db, _bearer_secret(headers)
                )
            except ApiError as exc:
                answer = error_response(exc.status, exc.code, exc.message, headers=exc.headers)
                await answer(scope, receive, send)
                return
            scope.setdefault("state", {})[_HOLDER] = found
        await self.app(scope, receive, send)


def holder(
    request: Request,
    context: Annotated[WebContext, Depends(web_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenHolder:
    """The token's holder: the one :class:`TokenFirst` found already, else looked up now."""
    early = getattr(request.state, _HOLDER, None)
    if isinstance(early, TokenHolder):
        return early
    return authenticate(context.db, credentials.credentials if credentials else None)


def role(needed: UserRole) -> Callable[..., TokenHolder]:
    def dependency(who: Annotated[TokenHolder, Depends(holder)]) -> TokenHolder:
        if not role_allows(who.role, needed):
            raise ApiError(403, "forbidden", f"this needs a token with the {needed.value} role")
        return who

    return dependency


Reader = Annotated[TokenHolder, Depends(role(UserRole.viewer))]
Writer = Annotated[TokenHolder, Depends(role(UserRole.editor))]
Owner = Annotated[TokenHolder, Depends(role(UserRole.admin))]
Context = Annotated[WebContext, Depends(web_context)]
