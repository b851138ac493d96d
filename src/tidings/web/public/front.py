"""The public front (``/``): every newsletter, when it comes, its sign-up form and archive."""

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tidings.compose.archive import front
from tidings.db.types import utcnow
from tidings.web.deps import WebContext, web_context
from tidings.web.pages import page
from tidings.web.public.subscribe import HONEYPOT
from tidings.web.security import FORM_COOKIE, csrf_token, set_form_cookie

router = APIRouter()
Context = Annotated[WebContext, Depends(web_context)]


@router.get("/", response_class=HTMLResponse)
async def front_page(request: Request, context: Context) -> HTMLResponse:
    """Each newsletter with its own sign-up form (one CSRF binding for the page, as on the
    sign-up page: the forms post there); not cached, as the forms carry the visitor's token."""
    newsletters = await asyncio.to_thread(front, context.db, utcnow())
    binding = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(16)
    publishers = list(dict.fromkeys(n.from_name for n in newsletters))
    response = page(
        context.pages,
        "front.html",
        newsletters=newsletters,
        publisher=publishers[0] if len(publishers) == 1 else None,
        csrf=csrf_token(context.settings.secret, binding),
        honeypot=HONEYPOT,
    )
    set_form_cookie(response, binding, context.secure_cookies)
    return response
