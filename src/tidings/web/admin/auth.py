"""Sign in, sign out, and the password change that a one-time password forces."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.accounts import Account, authenticate, change_password, end_sessions
from tidings.errors import InvalidInput
from tidings.web.admin.session import Context, console_page, see_other, signed_in
from tidings.web.deps import SIGN_INS, WebContext
from tidings.web.security import SESSION_COOKIE, SESSION_MAX_AGE, session_cookie

router = APIRouter(prefix="/admin")


def _safe_next(target: str) -> str:
    """Only console paths: never an absolute or protocol-relative URL (open redirects)."""
    if target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"


def _with_session(response: Response, context: WebContext, account: Account) -> Response:
    """Start a new session (a fresh id, so a planted cookie is never reused)."""
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(context.settings.secret, account.id, account.session_generation),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=context.secure_cookies,
        path="/",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, context: Context, next: str = "/admin") -> HTMLResponse:
    return console_page(request, context, None, "login.html", next=_safe_next(next), error=None)


@router.post("/login", response_model=None)
def login_post(
    request: Request,
    context: Context,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/admin",
) -> Response:
    target = _safe_next(next)
    if not context.allow(SIGN_INS, request):
        error = "Too many attempts from your address. Please wait five minutes."
        return console_page(
            request, context, None, "login.html", status_code=429, next=target, error=error
        )
    account = authenticate(context.db, email, password)
    if account is None:
        return console_page(
            request,
            context,
            None,
            "login.html",
            status_code=401,
            next=target,
            error="That email and password do not match.",
        )
    response = see_other(target)
    return _with_session(response, context, account)


@router.post("/logout")
def logout(context: Context, account: Annotated[Account, Depends(signed_in)]) -> Response:
    """Sign out: the cookie is deleted, and every session of the account ends on the server
    too, so a copy of the cookie (another device, a stolen one) stops working at once."""
    end_sessions(context.db, account.id)
    response = see_other("/admin/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/password", response_class=HTMLResponse)
def password_page(
    request: Request, context: Context, account: Annotated[Account, Depends(signed_in)]
) -> HTMLResponse:
    return console_page(request, context, account, "password.html", error=None)


@router.post("/password", response_model=None)
def password_post(
    request: Request,
    context: Context,
    account: Annotated[Account, Depends(signed_in)],
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    repeat: Annotated[str, Form()] = "",
) -> Response:
    try:
        if new != repeat:
            raise InvalidInput("the two new passwords differ")
        changed = change_password(context.db, account.id, current, new)
    except InvalidInput as exc:
        return console_page(
            request, context, account, "password.html", status_code=422, error=str(exc)
        )
    response = see_other("/admin")
    # The change ended every session of the account (this one too): issue a fresh one.
    return _with_session(response, context, changed)
