"""The mailbox of the built-in catcher: list, read, and the raw message.

Part of the console: caught mail holds live unsubscribe and preference links, so reading it
needs a signed-in user (any role).
"""

from email.message import EmailMessage
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse

from tidings.deliver.catcher import list_caught, read_caught
from tidings.web.admin.session import Viewer
from tidings.web.deps import WebContext, web_context
from tidings.web.pages import page
from tidings.web.security import FRAMED_MAIL_POLICY

router = APIRouter(prefix="/mailbox")
Context = Annotated[WebContext, Depends(web_context)]


def _caught(context: WebContext, key: str) -> tuple[EmailMessage, bytes]:
    found = read_caught(context.settings.data_dir, key)
    if found is None:
        raise HTTPException(status_code=404, detail="no such message")
    return found


@router.get("", response_class=HTMLResponse)
def mailbox(context: Context, account: Viewer) -> HTMLResponse:
    return page(context.pages, "mailbox.html", messages=list_caught(context.settings.data_dir))


@router.get("/{key}", response_class=HTMLResponse)
def message(key: str, context: Context, account: Viewer) -> HTMLResponse:
    parsed, _raw = _caught(context, key)
    text_part = parsed.get_body(("plain",))
    return page(
        context.pages,
        "message.html",
        key=key,
        subject=str(parsed["Subject"] or ""),
        headers=[(name, str(value)) for name, value in parsed.items()],
        text=text_part.get_content() if text_part is not None else "",
    )


@router.get("/{key}/html", response_class=HTMLResponse)
def message_html(key: str, context: Context, account: Viewer) -> HTMLResponse:
    html_part = _caught(context, key)[0].get_body(("html",))
    body = html_part.get_content() if html_part is not None else ""
    # Shown inside a console frame, sandboxed; the CSP also keeps scripts and plugins off.
    return HTMLResponse(body, headers={"Content-Security-Policy": FRAMED_MAIL_POLICY})


@router.get("/{key}/raw", response_class=PlainTextResponse)
def message_raw(key: str, context: Context, account: Viewer) -> PlainTextResponse:
    return PlainTextResponse(_caught(context, key)[1].decode("utf-8", errors="replace"))
