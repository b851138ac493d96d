"""Public pages reached from links in mail: unsubscribe (RFC 8058 one-click too), preferences,
and the archive copy of an edition ("View in browser")."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from tidings.audience.service import SubscriptionView, subscription_view, unsubscribe
from tidings.audience.tokens import Purpose, sign, unsign
from tidings.compose.service import archive_html
from tidings.paths import sample_dir
from tidings.web.deps import WebContext, web_context
from tidings.web.pages import page

router = APIRouter()
Context = Annotated[WebContext, Depends(web_context)]
ONE_CLICK = "List-Unsubscribe=One-Click"


def _invalid(context: WebContext) -> HTMLResponse:
    # The same neutral answer for tampered, foreign and unknown tokens.
    return page(context.pages, "invalid_link.html", status_code=400)


def _view(context: WebContext, purpose: Purpose, token: str) -> SubscriptionView | None:
    """The subscription behind a valid token of ``purpose``, or None."""
    subscription_id = unsign(context.settings.secret, purpose, token)
    return subscription_view(context.db, subscription_id) if subscription_id else None


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, context: Context) -> HTMLResponse:
    """A confirmation page: link scanners follow GETs, so a GET never unsubscribes."""
    view = _view(context, Purpose.unsubscribe, token)
    if view is None:
        return _invalid(context)
    return page(context.pages, "unsubscribe.html", view=view, action=f"/u/{token}")


@router.post("/u/{token}", response_model=None)
async def unsubscribe_post(token: str, request: Request, context: Context) -> Response:
    """Unsubscribe: from the page's button, or the RFC 8058 one-click POST of a mail client."""
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == "One-Click"
    subscription_id = unsign(context.settings.secret, Purpose.unsubscribe, token)
    view = unsubscribe(context.db, subscription_id) if subscription_id else None
    if view is None:
        return _invalid(context)
    if one_click:
        return PlainTextResponse("Unsubscribed.\n", status_code=200)
    return page(context.pages, "unsubscribed.html", view=view)


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(token: str, context: Context) -> HTMLResponse:
    """The subscription's status and a way out (the full preference centre comes later)."""
    view = _view(context, Purpose.preferences, token)
    if view is None:
        return _invalid(context)
    unsubscribe_token = sign(context.settings.secret, Purpose.unsubscribe, view.subscription_id)
    return page(
        context.pages, "preferences.html", view=view, unsubscribe_url=f"/u/{unsubscribe_token}"
    )


@router.get("/archive/{slug}/{edition_id}", response_class=HTMLResponse)
def archive_page(slug: str, edition_id: int, context: Context) -> HTMLResponse:
    """A sent edition without personal data."""
    body = archive_html(context.db, context.settings, slug, edition_id)
    if body is None:
        return page(context.pages, "invalid_link.html", status_code=404)
    return HTMLResponse(body)


@router.get("/sample/feed.xml")
def sample_feed() -> Response:
    """The sample publication's feed, which the demo newsletter polls."""
    body = (sample_dir() / "feed.xml").read_bytes()
    return Response(body, media_type="application/rss+xml")


@router.get("/healthz", response_class=PlainTextResponse)
def health() -> str:
    return "ok\n"
