"""Console: newsletters and their sources. Admins change them; everyone signed in reads."""

from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from tidings.catalog.newsletters import (
    NewsletterSpec,
    add_feed,
    create_newsletter,
    list_newsletters,
    newsletter_with_sources,
    remove_source,
    sender_of,
    update_newsletter,
)
from tidings.crontab import next_runs as next_sends
from tidings.db.models import Newsletter
from tidings.db.types import utcnow
from tidings.web.admin.session import Admin, Context, Editor, Viewer, console_page, see_other
from tidings.web.deps import RowId

router = APIRouter(prefix="/admin/newsletters")


def signup_snippet(base_url: str, newsletter: Newsletter) -> str:
    """HTML to paste into another site: it posts to the sign-up page, which asks the visitor
    to press Subscribe once more (cross-site posts carry no CSRF token)."""
    action = escape(f"{base_url}/subscribe/{newsletter.slug}", quote=True)
    return (
        f'<form method="post" action="{action}">\n'
        f'  <label for="tidings-email">Get {escape(newsletter.name)} by email</label>\n'
        '  <input id="tidings-email" name="email" type="email" required'
        ' placeholder="you@example.org">\n'
        '  <button type="submit">Subscribe</button>\n'
        "</form>"
    )


class NewsletterForm(BaseModel):
    """The newsletter form (create and edit); the slug is fixed once created."""

    slug: str = ""
    name: str
    sender: str
    reply_to: str = ""
    schedule: str
    weekly_schedule: str = ""
    timezone: str
    min_articles: int
    max_articles: int
    template_set: str = "digest"
    feeds: str = ""

    def spec(self, slug: str | None = None) -> NewsletterSpec:
        return NewsletterSpec(
            slug=slug or self.slug.strip(),
            name=self.name,
            sender=self.sender,
            reply_to=self.reply_to.strip() or None,
            schedule=self.schedule.strip(),
            weekly_schedule=self.weekly_schedule.strip() or None,
            timezone=self.timezone.strip(),
            feeds=[line.strip() for line in self.feeds.splitlines() if line.strip()],
            min_articles=self.min_articles,
            max_articles=self.max_articles,
            template_set=self.template_set.strip() or "digest",
        )


Fields = Annotated[NewsletterForm, Form()]
Text = Annotated[str, Form()]


@router.get("", response_class=HTMLResponse)
def newsletter_list(request: Request, context: Context, account: Viewer) -> HTMLResponse:
    return console_page(
        request, context, account, "newsletters.html", newsletters=list_newsletters(context.db)
    )


@router.get("/new", response_class=HTMLResponse)
def newsletter_new(request: Request, context: Context, account: Admin) -> HTMLResponse:
    return console_page(request, context, account, "newsletter_form.html", newsletter=None)


@router.post("/new", response_class=HTMLResponse)
def newsletter_create(context: Context, account: Admin, fields: Fields) -> Response:
    spec = fields.spec()
    create_newsletter(context.db, spec, allow_private=context.settings.feed_allow_private)
    return see_other(f"/admin/newsletters/{spec.slug}")


@router.get("/{slug}", response_class=HTMLResponse)
def newsletter_detail(
    slug: str, request: Request, context: Context, account: Viewer
) -> HTMLResponse:
    newsletter, sources = newsletter_with_sources(context.db, slug)
    return console_page(
        request,
        context,
        account,
        "newsletter.html",
        newsletter=newsletter,
        sources=sources,
        upcoming=next_sends(newsletter.schedule_cron, newsletter.timezone, 5, utcnow()),
        upcoming_weekly=(
            next_sends(newsletter.weekly_schedule_cron, newsletter.timezone, 5, utcnow())
            if newsletter.weekly_schedule_cron
            else []
        ),
        snippet=signup_snippet(context.settings.base_url, newsletter),
        signup_url=f"{context.settings.base_url}/subscribe/{newsletter.slug}",
    )


@router.get("/{slug}/edit", response_class=HTMLResponse)
def newsletter_edit(slug: str, request: Request, context: Context, account: Admin) -> HTMLResponse:
    newsletter, _ = newsletter_with_sources(context.db, slug)
    return console_page(
        request,
        context,
        account,
        "newsletter_form.html",
        newsletter=newsletter,
        sender=sender_of(newsletter),
    )


@router.post("/{slug}/edit", response_class=HTMLResponse)
def newsletter_update(slug: str, context: Context, account: Admin, fields: Fields) -> Response:
    update_newsletter(context.db, slug, fields.spec(slug))
    return see_other(f"/admin/newsletters/{slug}")


@router.post("/{slug}/feeds", response_class=HTMLResponse)
def feed_add(slug: str, context: Context, account: Admin, url: Text) -> Response:
    add_feed(context.db, slug, url, allow_private=context.settings.feed_allow_private)
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
