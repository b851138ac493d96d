"""Public sign-up and double opt-in confirmation pages.

The sign-up form is CSRF-protected with a random cookie. A post without a valid token (an
embedded form on another site, or a forged one) signs up in one step only when it comes
from one of the newsletter's allowed origins or our own site
(:func:`~tidings.audience.signup.embed_allowed`); from anywhere else it changes nothing and
asks the visitor, on a page of ours, to confirm with one press. Either way the sign-up then
takes the same path, the confirmation mail included.
"""

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from tidings.audience.service import subscription_view
from tidings.audience.signup import SignupForm, confirm_and_welcome, embed_allowed, sign_up
from tidings.catalog.newsletters import find_newsletter
from tidings.compose.archive import edition_schedule
from tidings.db.models import Newsletter
from tidings.db.types import utcnow
from tidings.errors import InvalidAddress
from tidings.mail.addresses import normalise_email
from tidings.mail.links import confirm_path, preferences_path
from tidings.mail.tokens import Purpose, sign, unsign
from tidings.web.deps import SIGNUPS, WebContext, web_context
from tidings.web.pages import page
from tidings.web.security import CSRF_FIELD, FORM_COOKIE, csrf_ok, csrf_token, set_form_cookie

router = APIRouter()
Context = Annotated[WebContext, Depends(web_context)]
HONEYPOT = "website"
CsrfField = Annotated[str, Form(alias=CSRF_FIELD)]


def _form_page(
    context: WebContext,
    request: Request,
    newsletter: Newsletter,
    *,
    email: str = "",
    name: str = "",
    error: str | None = None,
    note: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    binding = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(16)
    response = page(
        context.pages,
        "subscribe.html",
        status_code=status_code,
        newsletter=newsletter,
        email=email,
        name=name,
        error=error,
        note=note,
        csrf=csrf_token(context.settings.secret, binding),
        honeypot=HONEYPOT,
        schedule=edition_schedule(newsletter.schedule_cron, newsletter.timezone, utcnow()),
    )
    set_form_cookie(response, binding, context.secure_cookies)
    return response


def _confirm_step(
    context: WebContext, request: Request, newsletter: Newsletter, *, email: str, name: str
) -> HTMLResponse:
    """A page of ours asking "Subscribe EMAIL to NEWSLETTER?": a post from a site that is
    not allowed changes nothing until the visitor presses the button here."""
    if not email:
        return _form_page(context, request, newsletter, name=name)
    try:
        # Only an address is put to the visitor as a question of ours: any other text a
        # foreign page posts gets the form and the reason, as on our own form.
        normalise_email(email)
    except InvalidAddress as exc:
        return _form_page(
            context,
            request,
            newsletter,
            email=email,
            name=name,
            error=address_problem(email, exc),
            status_code=422,
        )
    binding = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(16)
    response = page(
        context.pages,
        "subscribe_confirm.html",
        newsletter=newsletter,
        email=email,
        name=name,
        csrf=csrf_token(context.settings.secret, binding),
    )
    set_form_cookie(response, binding, context.secure_cookies)
    return response


def address_problem(email: str, exc: InvalidAddress) -> str:
    """What is wrong with the address, in the words the API and CLI use (a non-ASCII part
    before the @-sign, a missing dot, ...), without repeating the address shown in the form."""
    reason = str(exc).removeprefix(f"{email!r}: ")
    return f"We cannot use this address: {reason.rstrip('.')}. Please check it."


def _one_header(request: Request, name: str) -> str | None:
    """The request's one ``name`` header; "" (no origin) when it came more than once, as no
    browser sends it: the first of two is not taken on trust."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        return ""
    return values[0] if values else None


def _not_found(context: WebContext) -> HTMLResponse:
    return page(context.pages, "not_found.html", status_code=404)


@router.get("/subscribe/{slug}", response_class=HTMLResponse)
def signup_page(slug: str, request: Request, context: Context) -> HTMLResponse:
    newsletter = find_newsletter(context.db, slug)
    if newsletter is None:
        return _not_found(context)
    return _form_page(context, request, newsletter)


@router.post("/subscribe/{slug}", response_class=HTMLResponse)
async def signup_post(slug: str, request: Request, context: Context) -> HTMLResponse:
    newsletter = await asyncio.to_thread(find_newsletter, context.db, slug)
    if newsletter is None:
        return _not_found(context)
    form = await request.form()
    email, name = str(form.get("email", "")).strip(), str(form.get("name", "")).strip()
    if not csrf_ok(
        context.settings.secret, request.cookies.get(FORM_COOKIE), form.get(CSRF_FIELD)
    ) and not embed_allowed(
        newsletter.allowed_origins or (),
        context.settings.base_url,
        _one_header(request, "origin"),
        _one_header(request, "referer"),
    ):
        return _confirm_step(context, request, newsletter, email=email, name=name)
    if form.get(HONEYPOT):
        # A bot filled the hidden field: answer as usual, do nothing.
        return page(context.pages, "check_inbox.html", newsletter=newsletter)
    if not await asyncio.to_thread(context.allow, SIGNUPS, request):
        return page(context.pages, "too_many.html", status_code=429, newsletter=newsletter)
    signup = SignupForm(
        slug=slug,
        email=email,
        name=name or None,
        ip=context.client_ip(request),
        page=context.page_url(request),
    )
    try:
        sign_up(context.signups, signup)
    except InvalidAddress as exc:
        return _form_page(
            context,
            request,
            newsletter,
            email=email,
            name=name,
            error=address_problem(email, exc),
            status_code=422,
        )
    # The same page whether the address was new, pending, active or suppressed.
    return page(context.pages, "check_inbox.html", newsletter=newsletter)


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(token: str, context: Context) -> HTMLResponse:
    """A page with a button: mail scanners open links, and must not confirm for the person."""
    subscription_id = unsign(context.settings.secret, Purpose.confirm, token)
    if subscription_id is None:
        return page(context.pages, "invalid_link.html", status_code=400)
    view = subscription_view(context.db, subscription_id)
    if view is None:
        return page(context.pages, "invalid_link.html", status_code=400)
    return page(
        context.pages,
        "confirm.html",
        view=view,
        action=confirm_path(token),
        csrf=csrf_token(context.settings.secret, token),
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm_post(token: str, context: Context, csrf: CsrfField = "") -> HTMLResponse:
    """Confirm; the welcome mail follows after the reader has been answered."""
    if not csrf_ok(context.settings.secret, token, csrf):
        return page(context.pages, "forbidden.html", status_code=403)
    subscription_id = unsign(context.settings.secret, Purpose.confirm, token)
    view = await confirm_and_welcome(context.signups, subscription_id) if subscription_id else None
    if view is None:
        return page(context.pages, "invalid_link.html", status_code=400)
    preferences = sign(context.settings.secret, Purpose.preferences, view.subscription_id)
    return page(
        context.pages, "confirmed.html", view=view, preferences_url=preferences_path(preferences)
    )
