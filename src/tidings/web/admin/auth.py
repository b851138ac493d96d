"""Sign in, sign out, the password change that a one-time password forces, and the pages
a signed link leads to: "Forgot your password?" and an invitation, both to choose a password.
"""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.accounts import Account, authenticate, change_password, end_sessions
from tidings.access.consolemail import send_reset
from tidings.access.recovery import (
    LINK_GONE,
    RESET_REQUESTS,
    LinkKind,
    choose_password,
    link_holder,
)
from tidings.errors import Conflict, InvalidInput
from tidings.web.admin.session import Context, console_page, see_other, signed_in
from tidings.web.deps import SIGN_INS, WebContext
from tidings.web.security import SESSION_COOKIE, SESSION_MAX_AGE, session_cookie

router = APIRouter(prefix="/admin")
NewPassword = Annotated[str, Form()]


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
            request,
            context,
            None,
            "login.html",
            status_code=429,
            next=target,
            error=error,
            email=email,
        )
    try:
        account = authenticate(context.db, email, password)
    except Conflict as exc:  # disabled: said only to whoever knows the password
        return console_page(
            request,
            context,
            None,
            "login.html",
            status_code=403,
            next=target,
            error=str(exc),
            email=email,
        )
    if account is None:
        return console_page(
            request,
            context,
            None,
            "login.html",
            status_code=401,
            next=target,
            error="That email and password do not match.",
            email=email,
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
            raise InvalidInput("The two new passwords differ; type the same one twice.")
        changed = change_password(context.db, account.id, current, new)
    except InvalidInput as exc:
        return console_page(
            request, context, account, "password.html", status_code=422, error=str(exc)
        )
    response = see_other("/admin")
    # The change ended every session of the account (this one too): issue a fresh one.
    return _with_session(response, context, changed)


@router.get("/forgot", response_class=HTMLResponse)
def forgot_page(request: Request, context: Context) -> HTMLResponse:
    return console_page(request, context, None, "forgot.html", sent=False, error=None)


@router.post("/forgot", response_class=HTMLResponse)
def forgot_post(
    request: Request,
    context: Context,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=320)] = "",
) -> HTMLResponse:
    """The same answer, as fast, whether or not the address is a user's: the link is looked
    up and mailed after the answer has gone."""
    if not context.allow(RESET_REQUESTS, request):
        error = "Too many requests from your address. Please wait ten minutes."
        return console_page(
            request, context, None, "forgot.html", status_code=429, sent=False, error=error
        )
    background.add_task(send_reset, context.db, context.settings, email)
    return console_page(request, context, None, "forgot.html", sent=True, error=None)


def _link_page(
    request: Request, context: Context, kind: LinkKind, token: str, error: str | None = None
) -> HTMLResponse:
    holder = link_holder(context.db, context.settings.secret, kind, token)
    if holder is None:
        return console_page(
            request, context, None, "reset.html", status_code=410, kind=kind, gone=LINK_GONE
        )
    return console_page(
        request,
        context,
        None,
        "reset.html",
        status_code=200 if error is None else 422,
        kind=kind,
        holder=holder,
        gone=None,
        error=error,
        action=request.url.path,
    )


def _link_post(
    request: Request, context: Context, kind: LinkKind, token: str, new: str, repeat: str
) -> Response:
    try:
        account = choose_password(context.db, context.settings.secret, kind, token, new, repeat)
    except InvalidInput as exc:
        return _link_page(request, context, kind, token, str(exc))
    # The change ended every other session of the account: this browser gets a fresh one.
    return _with_session(see_other("/admin"), context, account)


@router.get("/reset/{token}", response_class=HTMLResponse)
def reset_page(request: Request, context: Context, token: str) -> HTMLResponse:
    return _link_page(request, context, LinkKind.reset, token)


@router.post("/reset/{token}", response_model=None)
def reset_post(
    request: Request, context: Context, token: str, new: NewPassword = "", repeat: NewPassword = ""
) -> Response:
    return _link_post(request, context, LinkKind.reset, token, new, repeat)


@router.get("/welcome/{token}", response_class=HTMLResponse)
def welcome_page(request: Request, context: Context, token: str) -> HTMLResponse:
    return _link_page(request, context, LinkKind.invite, token)


@router.post("/welcome/{token}", response_model=None)
def welcome_post(
    request: Request, context: Context, token: str, new: NewPassword = "", repeat: NewPassword = ""
) -> Response:
    return _link_post(request, context, LinkKind.invite, token, new, repeat)
