"""Pages reached from links in mail: unsubscribe (RFC 8058 one-click too) with its undo, and
the preference centre. Every form but the one-click POST carries a CSRF token bound to the
signed link."""

import asyncio
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from tidings.audience.preferences import (
    PreferenceChange,
    preferences_of,
    save_and_welcome,
    undo_unsubscribe,
    unsubscribe_everything,
)
from tidings.audience.service import SubscriptionView, subscription_view, unsubscribe
from tidings.db.models import Cadence
from tidings.errors import InvalidInput
from tidings.mail.links import preferences_path, unsubscribe_path, unsubscribe_undo_path
from tidings.mail.tokens import Purpose, sign, unsign
from tidings.paths import sample_dir
from tidings.web.deps import RowId, WebContext, web_context
from tidings.web.pages import page
from tidings.web.security import CSRF_FIELD, csrf_ok, csrf_token

router = APIRouter()
Context = Annotated[WebContext, Depends(web_context)]
CsrfField = Annotated[str, Form(alias=CSRF_FIELD)]
_ZONES = sorted(available_timezones())
_SUBSCRIPTION_IDS = TypeAdapter(list[RowId])
#: The answer to a form that was not sent as the page offers it (a crafted or mangled POST):
#: the page again, saying so, without repeating what was sent.
_MANGLED = "The form did not come back as the page sent it. Please choose again and save."


def _invalid(context: WebContext) -> HTMLResponse:
    # The same neutral answer for tampered, foreign and unknown tokens.
    return page(context.pages, "invalid_link.html", status_code=400)


def _forbidden(context: WebContext) -> HTMLResponse:
    return page(context.pages, "forbidden.html", status_code=403)


def _view(context: WebContext, purpose: Purpose, token: str) -> SubscriptionView | None:
    """The subscription behind a valid token of ``purpose``, or None."""
    subscription_id = unsign(context.settings.secret, purpose, token)
    return subscription_view(context.db, subscription_id) if subscription_id else None


def _verified(context: WebContext, purpose: Purpose, token: str, csrf: str) -> int | HTMLResponse:
    """The subscription of a signed link whose form token is right; else the refusal page."""
    subscription_id = unsign(context.settings.secret, purpose, token)
    if subscription_id is None:
        return _invalid(context)
    if not csrf_ok(context.settings.secret, token, csrf):
        return _forbidden(context)
    return subscription_id


def _link(context: WebContext, purpose: Purpose, subscription_id: int) -> str:
    prefix = {Purpose.unsubscribe: "/u", Purpose.preferences: "/preferences"}[purpose]
    return f"{prefix}/{sign(context.settings.secret, purpose, subscription_id)}"


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, context: Context) -> HTMLResponse:
    """A confirmation page: link scanners follow GETs, so a GET never unsubscribes."""
    view = _view(context, Purpose.unsubscribe, token)
    if view is None:
        return _invalid(context)
    return page(
        context.pages,
        "unsubscribe.html",
        view=view,
        action=unsubscribe_path(token),
        csrf=csrf_token(context.settings.secret, token),
    )


@router.post("/u/{token}", response_model=None)
async def unsubscribe_post(token: str, request: Request, context: Context) -> Response:
    """Unsubscribe: from the page's button, or the RFC 8058 one-click POST of a mail client
    (which carries no CSRF token by design: the signed link is the proof)."""
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == "One-Click"
    subscription_id = unsign(context.settings.secret, Purpose.unsubscribe, token)
    if subscription_id is None:
        return _invalid(context)
    if not one_click and not csrf_ok(context.settings.secret, token, form.get(CSRF_FIELD)):
        return _forbidden(context)
    view = unsubscribe(context.db, subscription_id)
    if view is None:
        return _invalid(context)
    if one_click:
        return PlainTextResponse("Unsubscribed.\n", status_code=200)
    return page(
        context.pages,
        "unsubscribed.html",
        view=view,
        undo_action=unsubscribe_undo_path(token),
        csrf=csrf_token(context.settings.secret, token),
        preferences_url=_link(context, Purpose.preferences, view.subscription_id),
    )


@router.post("/u/{token}/undo", response_class=HTMLResponse)
def undo_post(token: str, context: Context, csrf: CsrfField = "") -> HTMLResponse:
    """Rejoin straight after leaving by mistake."""
    subscription_id = _verified(context, Purpose.unsubscribe, token, csrf)
    if isinstance(subscription_id, HTMLResponse):
        return subscription_id
    undone = undo_unsubscribe(context.db, subscription_id)
    view = subscription_view(context.db, subscription_id)
    if view is None:
        return _invalid(context)
    return page(
        context.pages,
        "resubscribed.html",
        view=view,
        undone=undone,
        preferences_url=_link(context, Purpose.preferences, view.subscription_id),
    )


def _preferences_page(
    context: WebContext,
    token: str,
    *,
    saved: bool = False,
    error: str | None = None,
    status_code: int = 422,
) -> HTMLResponse:
    subscription_id = unsign(context.settings.secret, Purpose.preferences, token)
    prefs = preferences_of(context.db, subscription_id) if subscription_id else None
    if prefs is None:
        return _invalid(context)
    return page(
        context.pages,
        "preferences.html",
        status_code=status_code if error else 200,
        prefs=prefs,
        zones=_ZONES,
        saved=saved,
        error=error,
        action=preferences_path(token),
        csrf=csrf_token(context.settings.secret, token),
        unsubscribe_url=_link(context, Purpose.unsubscribe, prefs.subscription_id),
    )


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(token: str, context: Context, saved: bool = False) -> HTMLResponse:
    """The preference centre: newsletters, sections, name and time zone."""
    return _preferences_page(context, token, saved=saved)


@router.post("/preferences/{token}", response_model=None)
async def preferences_post(
    token: str,
    context: Context,
    csrf: CsrfField = "",
    name: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    keep: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    section: Annotated[list[str], Form()] = [],  # noqa: B006
    cadence: Annotated[str, Form()] = Cadence.daily.value,
) -> Response:
    """Save the form; a newsletter rejoined here is welcomed after the answer."""
    subscription_id = _verified(context, Purpose.preferences, token, csrf)
    if isinstance(subscription_id, HTMLResponse):
        return subscription_id
    try:  # read here, not by FastAPI: its refusal is JSON that repeats the input
        kept, chosen = frozenset(_SUBSCRIPTION_IDS.validate_python(keep)), Cadence(cadence)
    except (ValidationError, ValueError):
        return await asyncio.to_thread(
            _preferences_page, context, token, error=_MANGLED, status_code=400
        )
    change = PreferenceChange(name or None, timezone or None, kept, section, chosen)
    try:
        found = await save_and_welcome(context.signups, subscription_id, change)
    except InvalidInput as exc:
        return await asyncio.to_thread(_preferences_page, context, token, error=str(exc))
    if not found:
        return _invalid(context)
    return RedirectResponse(preferences_path(token) + "?saved=true", status_code=303)


@router.post("/preferences/{token}/leave-all", response_class=HTMLResponse)
def leave_all_post(token: str, context: Context, csrf: CsrfField = "") -> HTMLResponse:
    subscription_id = _verified(context, Purpose.preferences, token, csrf)
    if isinstance(subscription_id, HTMLResponse):
        return subscription_id
    if not unsubscribe_everything(context.db, subscription_id):
        return _invalid(context)
    return _preferences_page(context, token, saved=True)


@router.get("/sample/feed.xml")
def sample_feed() -> Response:
    """The sample publication's feed, which the demo newsletter polls."""
    body = (sample_dir() / "feed.xml").read_bytes()
    return Response(body, media_type="application/rss+xml")


@router.get("/healthz", response_class=PlainTextResponse)
def health() -> str:
    return "ok\n"
