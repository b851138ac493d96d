"""Who is signed in to the console, what their role allows, and the CSRF guard.

Every console route depends on :func:`require` with the weakest role that may use it, and
every POST passes :func:`csrf_guard` (a router-wide dependency), whose token is bound to the
session id, or before sign-in to a random form cookie.
"""

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError

from tidings.access.accounts import Account, account_by_id, role_allows
from tidings.db.models import UserRole
from tidings.errors import Conflict, NotFound, TidingsError
from tidings.web.deps import WebContext, web_context
from tidings.web.pages import page
from tidings.web.security import (
    CSRF_FIELD,
    FORM_COOKIE,
    NONCE_KEY,
    SESSION_COOKIE,
    SessionData,
    csrf_ok,
    csrf_token,
    read_session,
    set_form_cookie,
)

Context = Annotated[WebContext, Depends(web_context)]
PASSWORD_PATH = "/admin/password"  # noqa: S105 (a path)


class LoginRequired(Exception):
    """No valid session: the handler sends the browser to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class PasswordChangeRequired(Exception):
    """A one-time password is still in use."""


class NotAllowed(Exception):
    """The role may not do this."""


class CsrfRejected(Exception):
    """A POST without a valid CSRF token."""


def _session(request: Request, context: WebContext) -> tuple[Account, SessionData] | None:
    data = read_session(context.settings.secret, request.cookies.get(SESSION_COOKIE))
    if data is None:
        return None
    account = account_by_id(context.db, data.user_id)
    if account is None or account.disabled or account.session_generation != data.generation:
        return None  # removed, disabled, signed out, or the password changed since it began
    return account, data


def signed_in(request: Request, context: Context) -> Account:
    """The signed-in account; sends anonymous visitors to the sign-in page."""
    found = _session(request, context)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/admin")
    account, data = found
    request.state.console_session = data
    if account.must_change_password and request.url.path not in (PASSWORD_PATH, "/admin/logout"):
        raise PasswordChangeRequired
    return account


def require(role: UserRole) -> Callable[..., Account]:
    """A dependency: the signed-in account, if its role is at least ``role``."""

    def dependency(account: Annotated[Account, Depends(signed_in)]) -> Account:
        if not role_allows(account.role, role):
            raise NotAllowed
        return account

    return dependency


Viewer = Annotated[Account, Depends(require(UserRole.viewer))]
Editor = Annotated[Account, Depends(require(UserRole.editor))]
Admin = Annotated[Account, Depends(require(UserRole.admin))]


def _binding(request: Request, context: WebContext) -> str | None:
    found = _session(request, context)
    return found[1].session_id if found else request.cookies.get(FORM_COOKIE)


async def csrf_guard(request: Request, context: Context) -> None:
    """Refuse any state-changing request whose form lacks a valid token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    form = await request.form()
    if not csrf_ok(context.settings.secret, _binding(request, context), form.get(CSRF_FIELD)):
        raise CsrfRejected


def console_page(
    request: Request,
    context: WebContext,
    account: Account | None,
    template: str,
    *,
    status_code: int = 200,
    folder: str = "admin/",
    **values: Any,
) -> HTMLResponse:
    """A console page with the account, the navigation and the form token filled in
    (``folder`` is where under templates/web/ the template is)."""
    data: SessionData | None = getattr(request.state, "console_session", None)
    binding = data.session_id if data else request.cookies.get(FORM_COOKIE)
    new_binding = None
    if binding is None:
        binding = new_binding = secrets.token_urlsafe(16)
    response = page(
        context.pages,
        f"{folder}{template}",
        status_code=status_code,
        account=account,
        csrf=csrf_token(context.settings.secret, binding),
        path=request.url.path,
        catcher=context.settings.smtp is None,
        csp_nonce=getattr(request.state, NONCE_KEY, ""),
        **values,
    )
    response.headers["Cache-Control"] = "no-store"  # console pages hold personal data
    if new_binding is not None:
        set_form_cookie(response, new_binding, context.secure_cookies)
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _console_path(url: str) -> str:
    """The path of a console URL, for a "go back" link; the dashboard for anything else."""
    path = urlsplit(url).path
    return path if path.startswith("/admin") else "/admin"


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def _signed_in_as(request: Request, context: WebContext) -> Account | None:
    """The account of a valid session, if any, for an error page's navigation."""
    found = _session(request, context)
    if found is None:
        return None
    request.state.console_session = found[1]
    return found[0]


def refusal_page(
    request: Request, context: WebContext, message: str, *, status_code: int, back: str
) -> HTMLResponse:
    """Why something was not done, inside the console's layout when someone is signed in."""
    return console_page(
        request,
        context,
        _signed_in_as(request, context),
        "refused.html",
        status_code=status_code,
        message=message,
        back=back,
    )


def exception_handlers(context: WebContext) -> dict[type[Exception], ExceptionHandler]:
    """How the console answers the exceptions above."""

    async def login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return see_other(f"/admin/login?next={quote(exc.next_url, safe='')}")

    async def password(request: Request, exc: Exception) -> Response:
        return see_other(PASSWORD_PATH)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        account = _signed_in_as(request, context)
        return console_page(request, context, account, "not_allowed.html", status_code=403)

    async def csrf(request: Request, exc: Exception) -> Response:
        return page(context.pages, "forbidden.html", status_code=403)

    async def refused(request: Request, exc: Exception) -> Response:
        # A service said no (bad input, missing thing, conflict): say why, change nothing.
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 422
        back = _console_path(request.headers.get("referer", ""))
        return refusal_page(request, context, str(exc), status_code=status, back=back)

    async def bad_data(request: Request, exc: Exception) -> Response:
        message = "A value is not acceptable text."
        return refusal_page(request, context, message, status_code=422, back="/admin")

    return {
        DataError: bad_data,
        LoginRequired: login,
        PasswordChangeRequired: password,
        NotAllowed: not_allowed,
        CsrfRejected: csrf,
        TidingsError: refused,
    }
