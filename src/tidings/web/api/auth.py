"""Bearer-token authentication and role checks for the API."""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tidings.accounts import role_allows
from tidings.apitokens import TokenHolder, token_holder
from tidings.db.models import UserRole
from tidings.web.api.errors import ApiError
from tidings.web.deps import WebContext, web_context

_bearer = HTTPBearer(auto_error=False, description="A token from 'tidings tokens create'")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def holder(
    request: Request,
    context: Annotated[WebContext, Depends(web_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenHolder:
    if credentials is None:
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'", _CHALLENGE)
    found = token_holder(context.db, credentials.credentials)
    if found is None:
        raise ApiError(401, "unauthenticated", "the token is not valid or was revoked", _CHALLENGE)
    return found


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
