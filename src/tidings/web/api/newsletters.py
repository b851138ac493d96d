"""/newsletters: newsletters, their sources, and the articles a CMS pushes."""

from fastapi import APIRouter, Response

from tidings.catalog.newsletters import (
    NewsletterSpec,
    add_feed,
    change_newsletter,
    create_newsletter,
    newsletter_page,
    newsletter_with_sources,
    remove_source,
    sender_of,
)
from tidings.compose.select import article_choices
from tidings.db.models import Newsletter, Source
from tidings.ingest.service import push_articles
from tidings.mail.templates import template_sets
from tidings.web.api.auth import Context, Owner, Reader, Writer
from tidings.web.api.paging import Cursor, Limit, decode, encode
from tidings.web.api.schemas import (
    ArticleOut,
    ArticlesIn,
    FeedIn,
    NewsletterIn,
    NewsletterOut,
    NewsletterPatch,
    Page,
    PollOut,
    PushOut,
    SourceOut,
)
from tidings.web.deps import RowId

router = APIRouter(prefix="/newsletters", tags=["newsletters"])


def _out(n: Newsletter) -> NewsletterOut:
    return NewsletterOut(
        slug=n.slug,
        name=n.name,
        sender=sender_of(n),
        reply_to=n.reply_to,
        schedule=n.schedule_cron,
        weekly_schedule=n.weekly_schedule_cron,
        timezone=n.timezone,
        min_articles=n.min_articles,
        max_articles=n.max_articles,
        template_set=n.template_set,
        allowed_origins=list(n.allowed_origins or ()),
        reader_time=n.reader_time,
        postal_address=n.postal_address,
        footer_text=n.footer_text,
        welcome_enabled=n.welcome_enabled,
        show_images=n.show_images,
        utm_source=n.utm_source,
    )


def _source(s: Source) -> SourceOut:
    return SourceOut(
        id=s.id,
        kind=s.kind.value,
        url=s.url,
        last_success_at=s.last_success_at,
        last_error=s.last_error,
        consecutive_failures=s.consecutive_failures,
    )


@router.get("", response_model=Page[NewsletterOut])
def list_newsletters(
    context: Context, who: Reader, cursor: Cursor = None, limit: Limit = 50
) -> Page[NewsletterOut]:
    page = newsletter_page(context.db, decode(cursor), limit)
    return Page[NewsletterOut](
        items=[_out(n) for n in page.rows], next_cursor=encode(page.next_after)
    )


@router.post("", response_model=NewsletterOut, status_code=201)
def create(body: NewsletterIn, context: Context, who: Owner) -> NewsletterOut:
    created = create_newsletter(
        context.db,
        NewsletterSpec(**body.model_dump()),
        allow_private=context.settings.feed_allow_private,
        template_sets=template_sets(context.settings.templates_dir),
    )
    return _out(created)


@router.get("/{slug}", response_model=NewsletterOut)
def read(slug: str, context: Context, who: Reader) -> NewsletterOut:
    return _out(newsletter_with_sources(context.db, slug)[0])


@router.patch("/{slug}", response_model=NewsletterOut)
def patch(slug: str, body: NewsletterPatch, context: Context, who: Owner) -> NewsletterOut:
    """Change the settings given (the slug stays: it is in every link already sent)."""
    changes = body.model_dump(exclude_unset=True)
    sets = template_sets(context.settings.templates_dir)
    return _out(change_newsletter(context.db, slug, changes, template_sets=sets))


@router.get("/{slug}/sources", response_model=list[SourceOut])
def sources(slug: str, context: Context, who: Reader) -> list[SourceOut]:
    return [_source(s) for s in newsletter_with_sources(context.db, slug)[1]]


@router.post("/{slug}/sources", response_model=list[SourceOut], status_code=201)
def add_source(slug: str, body: FeedIn, context: Context, who: Owner) -> list[SourceOut]:
    add_feed(context.db, slug, body.url, allow_private=context.settings.feed_allow_private)
    return [_source(s) for s in newsletter_with_sources(context.db, slug)[1]]


@router.post("/{slug}/poll", response_model=PollOut, status_code=202)
def poll(slug: str, context: Context, who: Writer) -> PollOut:
    """Start polling the newsletter's feeds in the background and answer at once (202);
    GET /sources shows each feed's last result."""
    started = context.polls.start(slug)
    return PollOut(
        started=started.started,
        already_running=started.already_running,
        message=started.message,
    )


@router.delete("/{slug}/sources/{source_id}", status_code=204)
def delete_source(slug: str, source_id: RowId, context: Context, who: Owner) -> Response:
    remove_source(context.db, slug, source_id)
    return Response(status_code=204)


@router.post("/{slug}/articles", response_model=PushOut)
def push(slug: str, body: ArticlesIn, context: Context, who: Writer) -> PushOut:
    """A CMS pushes new or edited articles; each is stored once (by guid, else URL)."""
    report = push_articles(context.db, slug, list(body.articles))
    return PushOut(
        new=report.counts.new,
        updated=report.counts.updated,
        unchanged=report.counts.unchanged,
        rejected=report.rejected,
    )


@router.get("/{slug}/articles", response_model=list[ArticleOut])
def articles(
    slug: str, context: Context, who: Reader, q: str = "", limit: Limit = 50
) -> list[ArticleOut]:
    """The newest articles (optionally whose title contains ``q``)."""
    return [ArticleOut(**vars(a)) for a in article_choices(context.db, slug, q[:200], limit)]
