"""Console: who may use Tidings. Admins add users (invited by mail when mail is configured,
otherwise with a one-time password shown once), change their role, disable, enable and
remove them, and create (shown once) and revoke API tokens.

A refused change (the last admin) comes back on the same page, the sentence beside the
user it concerns."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.accounts import create_user, list_users
from tidings.access.apitokens import create_token, list_tokens, revoke_token
from tidings.access.consolemail import invite
from tidings.access.people import disable_user, enable_user, remove_user, set_role
from tidings.db.models import UserRole
from tidings.errors import Conflict, InvalidInput
from tidings.text import as_sentence
from tidings.web.admin.session import Admin, Context, console_page, see_other
from tidings.web.deps import RowId

router = APIRouter(prefix="/admin/access")
Role = Annotated[UserRole, Form()]


@dataclass(frozen=True)
class Typed:
    """A refused add-user or new-token form: what was typed, and the sentence why."""

    text: str
    role: str
    problem: str


def _page(
    request: Request,
    context: Context,
    account: Admin,
    *,
    status_code: int = 200,
    new_user: str | None = None,
    one_time_password: str | None = None,
    invited: bool = False,
    new_token: str | None = None,
    refused: tuple[int, str] | None = None,
    user_form: Typed | None = None,
    token_form: Typed | None = None,
) -> HTMLResponse:
    """The page, with a just-made password or token shown this once, a refusal beside the
    user it concerns, or a refused form with what was typed and why."""
    return console_page(
        request,
        context,
        account,
        "access.html",
        status_code=status_code,
        users=list_users(context.db),
        tokens=list_tokens(context.db),
        roles=[r.value for r in UserRole],
        new_user=new_user,
        one_time_password=one_time_password,
        invited=invited,
        new_token=new_token,
        refused=refused,
        user_form=user_form,
        token_form=token_form,
    )


@router.get("", response_class=HTMLResponse)
def access_page(request: Request, context: Context, account: Admin) -> HTMLResponse:
    return _page(request, context, account)


@router.post("/users", response_class=HTMLResponse)
async def user_create(
    request: Request, context: Context, account: Admin, email: Annotated[str, Form()], role: Role
) -> HTMLResponse:
    """Add a user: with mail configured they get an invitation to choose their password;
    without it (or if the invitation could not be sent) the one-time password is shown."""
    try:
        created, password = create_user(context.db, email, role)
    except (InvalidInput, Conflict) as exc:
        reason = str(exc) if isinstance(exc, Conflict) else f"That address cannot be used: {exc}"
        typed = Typed(email, role.value, as_sentence(reason))
        status = 409 if isinstance(exc, Conflict) else 422
        return _page(request, context, account, status_code=status, user_form=typed)
    if context.settings.smtp is not None and await invite(context.db, context.settings, created):
        return _page(request, context, account, new_user=created.email, invited=True)
    return _page(request, context, account, new_user=created.email, one_time_password=password)


@router.post("/users/{user_id}/role", response_class=HTMLResponse)
def user_role(
    user_id: RowId, request: Request, context: Context, account: Admin, role: Role
) -> Response:
    try:
        set_role(context.db, user_id, role)
    except Conflict as exc:
        return _refused(request, context, account, user_id, exc)
    return see_other("/admin/access")


@router.post("/users/{user_id}/disable", response_class=HTMLResponse)
def user_disable(user_id: RowId, request: Request, context: Context, account: Admin) -> Response:
    """Disable a user; their sessions end at once."""
    try:
        disable_user(context.db, user_id)
    except Conflict as exc:
        return _refused(request, context, account, user_id, exc)
    return see_other("/admin/access")


@router.post("/users/{user_id}/enable", response_class=HTMLResponse)
def user_enable(user_id: RowId, context: Context, account: Admin) -> Response:
    enable_user(context.db, user_id)
    return see_other("/admin/access")


@router.post("/users/{user_id}/remove", response_class=HTMLResponse)
def user_remove(user_id: RowId, request: Request, context: Context, account: Admin) -> Response:
    """Remove a user; their sessions end with them."""
    try:
        remove_user(context.db, user_id)
    except Conflict as exc:
        return _refused(request, context, account, user_id, exc)
    return see_other("/admin/access")


def _refused(
    request: Request, context: Context, account: Admin, user_id: int, exc: Conflict
) -> HTMLResponse:
    return _page(request, context, account, status_code=409, refused=(user_id, str(exc)))


@router.post("/tokens", response_class=HTMLResponse)
def token_create(
    request: Request, context: Context, account: Admin, name: Annotated[str, Form()], role: Role
) -> HTMLResponse:
    if not name.strip():
        typed = Typed(name, role.value, "Say what the token is for, such as “CMS article push”.")
        return _page(request, context, account, status_code=422, token_form=typed)
    _, secret = create_token(context.db, name.strip(), role, created_by=account.email)
    return _page(request, context, account, new_token=secret)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
def token_revoke(token_id: RowId, context: Context, account: Admin) -> Response:
    revoke_token(context.db, token_id)
    return see_other("/admin/access")
