"""Console: newsletters and their sources. Admins change them; everyone signed in reads."""

import re
from dataclasses import replace
from html import escape
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from tidings.access.accounts import Account
from tidings.catalog.newsletters import (
    ARTICLES_AT_MOST,
    DEFAULT_SCHEDULE,
    NewsletterSpec,
    SettingsRefused,
    add_feed,
    check_settings,
    create_newsletter,
    list_newsletters,
    newsletter_with_sources,
    remove_source,
    sender_of,
    update_newsletter,
)
from tidings.crontab import next_runs as next_sends
from tidings.crontab import schedule_in_words
from tidings.db.models import Newsletter
from tidings.db.types import utcnow
from tidings.errors import Conflict, FeedError, InvalidInput
from tidings.mail.templates import template_sets
from tidings.schedule.coming import DAYS_DEFAULT, coming_sends
from tidings.text import as_sentence
from tidings.web.admin.session import Admin, Context, Editor, Viewer, console_page, see_other
from tidings.web.deps import RowId

router = APIRouter(prefix="/admin/newsletters")


def signup_snippet(base_url: str, newsletter: Newsletter) -> str:
    """HTML to paste into another site: it posts to the sign-up page, which signs up in one
    step from the newsletter's allowed origins and asks the visitor to confirm on our page
    from anywhere else (audience/signup.embed_allowed)."""
    action = escape(f"{base_url}/subscribe/{newsletter.slug}", quote=True)
    return (
        f'<form method="post" action="{action}">\n'
        f'  <label for="tidings-email">Get {escape(newsletter.name)} by email</label>\n'
        '  <input id="tidings-email" name="email" type="email" required'
        ' placeholder="you@example.org">\n'
        '  <button type="submit">Subscribe</button>\n'
        "</form>"
    )


#: The schedule picker's repeats: how often, and the crontab weekday field of each.
REPEATS = {"daily": "*", "weekdays": "1-5", "weekly": None}
#: Crontab's weekday numbers (Sunday 0), in the picker's order.
WEEKDAYS = [
    ("1", "Monday"),
    ("2", "Tuesday"),
    ("3", "Wednesday"),
    ("4", "Thursday"),
    ("5", "Friday"),
    ("6", "Saturday"),
    ("0", "Sunday"),
]
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_PICKED = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* (\*|1-5|[0-6])$")


class NewsletterForm(BaseModel):
    """The newsletter form (create and edit), as typed: every value is text, so a mistake
    comes back beside its field with what was typed, never as an error page. The slug is
    fixed once created."""

    slug: str = ""
    name: str = ""
    sender: str = ""
    reply_to: str = ""
    schedule: str = ""
    schedule_was: str = ""
    repeat: str = ""
    at: str = ""
    day: str = "1"
    weekly_schedule: str = ""
    timezone: str = ""
    min_articles: str = "1"
    max_articles: str = "20"
    template_set: str = ""
    allowed_origins: str = ""
    feeds: str = ""
    # Checkboxes: a ticked box posts "on", an unticked one posts nothing (so "" is off; the
    # form shows a new newsletter's welcome and images ticked).
    reader_time: str = ""
    welcome_enabled: str = ""
    show_images: str = ""
    postal_address: str = ""
    footer_text: str = ""
    utm_source: str = ""


def picked_crontab(repeat: str, at: str, day: str) -> str | None:
    """The crontab line of the schedule picker (every day, weekdays, or one day a week at
    HH:MM), or None when nothing usable is picked."""
    found = _TIME.match(at.strip())
    if repeat not in REPEATS or found is None:
        return None
    weekday = REPEATS[repeat] or (day if day in dict(WEEKDAYS) else None)
    if weekday is None:
        return None
    return f"{int(found[2])} {int(found[1])} * * {weekday}"


def picker_of(cron: str) -> dict[str, str]:
    """The picker's values for a crontab line it can show, else "custom" (the raw line)."""
    found = _PICKED.match(cron.strip())
    if found is None or int(found[1]) > 59 or int(found[2]) > 23:
        return {"repeat": "", "at": "", "day": "1"}
    minute, hour, weekday = found.groups()
    repeat = {"*": "daily", "1-5": "weekdays"}.get(weekday, "weekly")
    return {"repeat": repeat, "at": f"{int(hour):02d}:{int(minute):02d}", "day": weekday}


def _schedule(fields: NewsletterForm) -> str:
    """The crontab to store: the raw line as typed, unless it was left empty or as shown
    while the picker says something else (the form works without JavaScript)."""
    raw = fields.schedule.strip()
    picked = picked_crontab(fields.repeat, fields.at, fields.day)
    if picked is not None and raw in ("", fields.schedule_was.strip()):
        return picked
    return raw


def _count(problems: dict[str, str], name: str, text: str, fallback: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        problems[name] = "Give a whole number."
        return fallback


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _ticked(value: str) -> bool:
    return value.strip() != ""


def _box(on: bool) -> str:
    return "on" if on else ""


def newsletter_spec(
    fields: NewsletterForm, sets: list[str], slug: str | None = None
) -> NewsletterSpec:
    """The settings the form gives, or :class:`SettingsRefused` naming every problem: what
    is not even a number or a schedule, and what the catalog refuses besides."""
    problems: dict[str, str] = {}
    min_articles = _count(problems, "min_articles", fields.min_articles, 1)
    max_articles = _count(problems, "max_articles", fields.max_articles, ARTICLES_AT_MOST)
    schedule = _schedule(fields)
    if not schedule:
        problems["schedule"] = "Choose when it is sent, or write a crontab line."
    spec = NewsletterSpec(
        slug=slug or fields.slug.strip(),
        name=fields.name,
        sender=fields.sender,
        reply_to=fields.reply_to.strip() or None,
        schedule=schedule,
        weekly_schedule=fields.weekly_schedule.strip() or None,
        timezone=fields.timezone.strip(),
        feeds=_lines(fields.feeds),
        min_articles=min_articles,
        max_articles=max_articles,
        template_set=fields.template_set.strip() or "digest",
        allowed_origins=tuple(_lines(fields.allowed_origins)),
        reader_time=_ticked(fields.reader_time),
        postal_address=fields.postal_address,
        footer_text=fields.footer_text,
        welcome_enabled=_ticked(fields.welcome_enabled),
        show_images=_ticked(fields.show_images),
        utm_source=fields.utm_source,
    )
    if problems:
        try:
            check_settings(replace(spec, schedule=schedule or DEFAULT_SCHEDULE), sets)
        except SettingsRefused as exc:
            problems = {**exc.problems, **problems}
        raise SettingsRefused(problems)
    return spec


def _typed(newsletter: Newsletter | None) -> dict[str, str]:
    """The form's values for a stored newsletter, or a new one's defaults."""
    if newsletter is None:
        new = NewsletterSpec(slug="", name="", sender="")
        values = NewsletterForm(
            schedule=DEFAULT_SCHEDULE,
            timezone="UTC",
            welcome_enabled=_box(new.welcome_enabled),
            show_images=_box(new.show_images),
        ).model_dump()
    else:
        values = NewsletterForm(
            name=newsletter.name,
            sender=sender_of(newsletter),
            reply_to=newsletter.reply_to or "",
            schedule=newsletter.schedule_cron,
            weekly_schedule=newsletter.weekly_schedule_cron or "",
            timezone=newsletter.timezone,
            min_articles=str(newsletter.min_articles),
            max_articles=str(newsletter.max_articles),
            template_set=newsletter.template_set,
            allowed_origins="\n".join(newsletter.allowed_origins or ()),
            reader_time=_box(newsletter.reader_time),
            postal_address=newsletter.postal_address or "",
            footer_text=newsletter.footer_text or "",
            welcome_enabled=_box(newsletter.welcome_enabled),
            show_images=_box(newsletter.show_images),
            utm_source=newsletter.utm_source or "",
        ).model_dump()
    return {**values, **picker_of(values["schedule"]), "schedule_was": values["schedule"]}


Fields = Annotated[NewsletterForm, Form()]
Text = Annotated[str, Form()]


@router.get("", response_class=HTMLResponse)
def newsletter_list(request: Request, context: Context, account: Viewer) -> HTMLResponse:
    return console_page(
        request, context, account, "newsletters.html", newsletters=list_newsletters(context.db)
    )


def _form_page(
    request: Request,
    context: Context,
    account: Account,
    newsletter: Newsletter | None,
    typed: dict[str, str],
    problems: dict[str, str] | None = None,
) -> HTMLResponse:
    """The form with what was typed, and each problem beside its field (422)."""
    return console_page(
        request,
        context,
        account,
        "newsletter_form.html",
        status_code=422 if problems else 200,
        newsletter=newsletter,
        form=typed,
        problems=problems or {},
        template_sets=template_sets(context.settings.templates_dir),
        repeats=[
            ("", "Custom (crontab line)"),
            ("daily", "Every day at"),
            ("weekdays", "Monday to Friday at"),
            ("weekly", "Once a week, on"),
        ],
        weekdays=WEEKDAYS,
        zones=sorted(available_timezones()),
    )


@router.get("/new", response_class=HTMLResponse)
def newsletter_new(request: Request, context: Context, account: Admin) -> HTMLResponse:
    return _form_page(request, context, account, None, _typed(None))


@router.post("/new", response_class=HTMLResponse)
def newsletter_create(
    request: Request, context: Context, account: Admin, fields: Fields
) -> Response:
    sets = template_sets(context.settings.templates_dir)
    try:
        spec = newsletter_spec(fields, sets)
        create_newsletter(
            context.db,
            spec,
            allow_private=context.settings.feed_allow_private,
            template_sets=sets,
        )
    except SettingsRefused as exc:
        return _form_page(request, context, account, None, fields.model_dump(), exc.problems)
    except Conflict as exc:
        refused = {"slug": str(exc)}
        return _form_page(request, context, account, None, fields.model_dump(), refused)
    return see_other(f"/admin/newsletters/{spec.slug}")


@router.get("/{slug}", response_class=HTMLResponse)
def newsletter_detail(
    slug: str, request: Request, context: Context, account: Viewer
) -> HTMLResponse:
    return _detail_page(request, context, account, slug)


def _detail_page(
    request: Request,
    context: Context,
    account: Account,
    slug: str,
    *,
    feed: tuple[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The newsletter page; ``feed`` is a refused feed URL as typed, and why."""
    newsletter, sources = newsletter_with_sources(context.db, slug)
    return console_page(
        request,
        context,
        account,
        "newsletter.html",
        status_code=status_code,
        newsletter=newsletter,
        sources=sources,
        in_words=schedule_in_words(newsletter.schedule_cron, newsletter.timezone),
        upcoming=next_sends(newsletter.schedule_cron, newsletter.timezone, 5, utcnow()),
        upcoming_weekly=(
            next_sends(newsletter.weekly_schedule_cron, newsletter.timezone, 5, utcnow())
            if newsletter.weekly_schedule_cron
            else []
        ),
        snippet=signup_snippet(context.settings.base_url, newsletter),
        signup_url=f"{context.settings.base_url}/subscribe/{newsletter.slug}",
        feed=feed,
        coming=coming_sends(context.db, slug, DAYS_DEFAULT, utcnow()),
    )


@router.get("/{slug}/edit", response_class=HTMLResponse)
def newsletter_edit(slug: str, request: Request, context: Context, account: Admin) -> HTMLResponse:
    newsletter, _ = newsletter_with_sources(context.db, slug)
    return _form_page(request, context, account, newsletter, _typed(newsletter))


@router.post("/{slug}/edit", response_class=HTMLResponse)
def newsletter_update(
    slug: str, request: Request, context: Context, account: Admin, fields: Fields
) -> Response:
    sets = template_sets(context.settings.templates_dir)
    try:
        update_newsletter(context.db, slug, newsletter_spec(fields, sets, slug), template_sets=sets)
    except SettingsRefused as exc:
        newsletter, _ = newsletter_with_sources(context.db, slug)
        return _form_page(request, context, account, newsletter, fields.model_dump(), exc.problems)
    return see_other(f"/admin/newsletters/{slug}")


@router.post("/{slug}/feeds", response_class=HTMLResponse)
def feed_add(slug: str, request: Request, context: Context, account: Admin, url: Text) -> Response:
    """Add a feed; a refused one comes back on the page, typed, with the reason beside it."""
    try:
        add_feed(context.db, slug, url, allow_private=context.settings.feed_allow_private)
    except (InvalidInput, Conflict, FeedError) as exc:
        status = 409 if isinstance(exc, Conflict) else 422
        reason = str(exc) if isinstance(exc, Conflict) else f"That feed was not added: {exc}"
        reason = as_sentence(reason)
        return _detail_page(request, context, account, slug, feed=(url, reason), status_code=status)
    return see_other(f"/admin/newsletters/{slug}")


@router.post("/{slug}/sources/{source_id}/remove", response_class=HTMLResponse)
def source_remove(slug: str, source_id: RowId, context: Context, account: Admin) -> Response:
    remove_source(context.db, slug, source_id)
    return see_other(f"/admin/newsletters/{slug}")


@router.post("/{slug}/poll", response_class=HTMLResponse)
def poll_now(slug: str, request: Request, context: Context, account: Editor) -> HTMLResponse:
    """Start polling the feeds in the background and answer at once (a slow feed never holds
    a web worker); the page shows each source's last result."""
    started = context.polls.start(slug)
    _, sources = newsletter_with_sources(context.db, slug)
    return console_page(
        request,
        context,
        account,
        "polled.html",
        slug=slug,
        started=started,
        sources=[s for s in sources if s.url],
        polling=context.polls.polling(),
    )
