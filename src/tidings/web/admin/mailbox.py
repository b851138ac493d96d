"""The mailbox of the built-in catcher: list, read, and the raw message.

Part of the console, for editors and admins: caught mail holds live unsubscribe,
preference and sign-in links, so a viewer may not read it.
"""

from email.message import EmailMessage

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from tidings.deliver.catcher import list_caught, read_caught
from tidings.web.admin.session import Context, Editor, console_page
from tidings.web.deps import WebContext
from tidings.web.security import FRAMED_MAIL_POLICY

router = APIRouter(prefix="/mailbox")


def _caught(context: WebContext, key: str) -> tuple[EmailMessage, bytes]:
    found = read_caught(context.settings.data_dir, key)
    if found is None:
        raise HTTPException(status_code=404, detail="no such message")
    return found


@router.get("", response_class=HTMLResponse)
def mailbox(request: Request, context: Context, account: Editor) -> HTMLResponse:
    caught = list_caught(context.settings.data_dir)
    return console_page(request, context, account, "mailbox.html", folder="", messages=caught)


@router.get("/{key}", response_class=HTMLResponse)
def message(key: str, request: Request, context: Context, account: Editor) -> HTMLResponse:
    parsed, _raw = _caught(context, key)
    text_part = parsed.get_body(("plain",))
    return console_page(
        request,
        context,
        account,
        "message.html",
        folder="",
        key=key,
        subject=str(parsed["Subject"] or ""),
        headers=[(name, str(value)) for name, value in parsed.items()],
        text=text_part.get_content() if text_part is not None else "",
    )


@router.get("/{key}/html", response_class=HTMLResponse)
def message_html(key: str, context: Context, account: Editor) -> HTMLResponse:
    html_part = _caught(context, key)[0].get_body(("html",))
    body = html_part.get_content() if html_part is not None else ""
    # Shown inside a console frame, sandboxed; the CSP also keeps scripts and plugins off.
    return HTMLResponse(body, headers={"Content-Security-Policy": FRAMED_MAIL_POLICY})


@router.get("/{key}/raw", response_class=PlainTextResponse)
def message_raw(key: str, context: Context, account: Editor) -> PlainTextResponse:
    return PlainTextResponse(_caught(context, key)[1].decode("utf-8", errors="replace"))
