"""The console's DKIM keys page (admin only): every key with the record to publish and what
DNS publishes now, a form to make one, a button to remove one. Never a private key."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from tidings.db.models import DkimAlgorithm
from tidings.errors import Conflict, InvalidInput
from tidings.mail.dkim.published import key_report
from tidings.mail.dkim.store import KeyView, add_key, remove_key
from tidings.text import as_sentence
from tidings.web.admin.session import Admin, Context, console_page, see_other
from tidings.web.deps import RowId

router = APIRouter(prefix="/admin/dkim")


def _page(
    request: Request,
    context: Context,
    account: Admin,
    new_key: KeyView | None = None,
    typed: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """The keys; after a refused form, what was typed and the sentence why."""
    return console_page(
        request,
        context,
        account,
        "dkim.html",
        status_code=status_code,
        report=key_report(context.db, context.settings),
        algorithms=[a.value for a in DkimAlgorithm],
        new_key=new_key,
        typed=typed or {"domain": "", "selector": "", "algorithm": DkimAlgorithm.rsa.value},
        problem=problem,
    )


@router.get("", response_class=HTMLResponse)
def dkim_page(request: Request, context: Context, account: Admin) -> HTMLResponse:
    return _page(request, context, account)


@router.post("", response_class=HTMLResponse)
def dkim_create(
    request: Request,
    context: Context,
    account: Admin,
    domain: Annotated[str, Form(max_length=253)],
    algorithm: Annotated[DkimAlgorithm, Form()] = DkimAlgorithm.rsa,
    selector: Annotated[str, Form(max_length=63)] = "",
) -> HTMLResponse:
    """Make a key; the page shows its record to publish."""
    try:
        key = add_key(context.db, context.settings, domain, selector.strip() or None, algorithm)
    except (InvalidInput, Conflict) as exc:
        typed = {"domain": domain, "selector": selector, "algorithm": algorithm.value}
        status = 409 if isinstance(exc, Conflict) else 422
        return _page(
            request,
            context,
            account,
            typed=typed,
            problem=as_sentence(f"The key was not made: {exc}"),
            status_code=status,
        )
    return _page(request, context, account, new_key=key)


@router.post("/{key_id}/remove", response_class=HTMLResponse)
def dkim_remove(key_id: RowId, context: Context, account: Admin) -> Response:
    remove_key(context.db, key_id)
    return see_other("/admin/dkim")
