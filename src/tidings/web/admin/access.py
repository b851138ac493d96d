"""Console: who may use Tidings. Admins create and remove users (with a one-time password)
and API tokens (shown once), and revoke tokens."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from tidings.access.accounts import create_user, list_users, remove_user
from tidings.access.apitokens import create_token, list_tokens, revoke_token
from tidings.db.models import UserRole
from tidings.web.admin.session import Admin, Context, console_page, see_other
from tidings.web.deps import RowId

router = APIRouter(prefix="/admin/access")
Role = Annotated[UserRole, Form()]


def _page(
    request: Request,
    context: Context,
    account: Admin,
    *,
    new_user: str | None = None,
    one_time_password: str | None = None,
    new_token: str | None = None,
) -> HTMLResponse:
    """The page, with a just-made password or token shown this once."""
    return console_page(
        request,
        context,
        account,
        "access.html",
        users=list_users(context.db),
        tokens=list_tokens(context.db),
        roles=[r.value for r in UserRole],
        new_user=new_user,
        one_time_password=one_time_password,
        new_token=new_token,
    )


@router.get("", response_class=HTMLResponse)
def access_page(request: Request, context: Context, account: Admin) -> HTMLResponse:
    return _page(request, context, account)


@router.post("/users", response_class=HTMLResponse)
def user_create(
    request: Request, context: Context, account: Admin, email: Annotated[str, Form()], role: Role
) -> HTMLResponse:
    created, password = create_user(context.db, email, role)
    return _page(request, context, account, new_user=created.email, one_time_password=password)


@router.post("/users/{user_id}/remove", response_class=HTMLResponse)
def user_remove(user_id: RowId, context: Context, account: Admin) -> Response:
    """Remove a user; their sessions end with them."""
    remove_user(context.db, user_id)
    return see_other("/admin/access")


@router.post("/tokens", response_class=HTMLResponse)
def token_create(
    request: Request, context: Context, account: Admin, name: Annotated[str, Form()], role: Role
) -> HTMLResponse:
    _, secret = create_token(context.db, name, role, created_by=account.email)
    return _page(request, context, account, new_token=secret)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
def token_revoke(token_id: RowId, context: Context, account: Admin) -> Response:
    revoke_token(context.db, token_id)
    return see_other("/admin/access")
