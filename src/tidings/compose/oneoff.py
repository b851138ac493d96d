"""One-off editions: an editor's send now, send later, and the preview of either."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tidings.audience.service import subscription_for
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.compose.fit import FittedEdition, render_to_fit
from tidings.compose.select import chosen_articles, select_articles
from tidings.compose.service import (
    ComposeResult,
    OneOff,
    attach_articles,
    renderer,
    set_content,
    start_sending,
)
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Edition, EditionKind, EditionStatus, Newsletter
from tidings.db.types import as_utc, utcnow
from tidings.errors import InvalidInput
from tidings.mail.edition import edition_mail


def _one_off_articles(
    session: Session, newsletter: Newsletter, one_off: OneOff, now: datetime
) -> list[Article]:
    if one_off.article_ids:
        return chosen_articles(session, newsletter, one_off.article_ids)
    articles = select_articles(session, newsletter, cutoff=now)
    if not articles:
        raise InvalidInput("there are no new articles to send: choose some with --article ID")
    return articles


def one_off_edition(
    session: Session, settings: Settings, slug: str, one_off: OneOff, now: datetime
) -> tuple[Newsletter, list[Article], Edition]:
    """Select and render a one-off edition (not yet added to the session).

    Articles the editor chose are all kept (too large is theirs to fix, and they are told);
    the automatic selection leaves out what does not fit the size limit, and says so.
    """
    newsletter = newsletter_by_slug(session, slug)
    articles = _one_off_articles(session, newsletter, one_off, now)
    render = renderer(settings, newsletter, now, one_off)
    if one_off.article_ids:
        fitted = FittedEdition(render(articles), articles, [], [])
    else:
        fitted = render_to_fit(render, articles)
    edition = Edition(
        newsletter_id=newsletter.id,
        kind=EditionKind.oneoff,
        status=EditionStatus.draft,
        cutoff_at=now,
        intro_markdown=one_off.intro_markdown,
        created_by=one_off.created_by,
        created_at=now,
        started_at=now,
    )
    set_content(edition, fitted)
    return newsletter, fitted.articles, edition


def schedule_one_off(
    db: Database, settings: Settings, slug: str, one_off: OneOff, send_at: datetime
) -> int:
    """Render a one-off edition now and keep it as a draft that the scheduler starts at
    ``send_at`` (subscribers are chosen then, so late sign-ups get it too)."""
    now, send_at = utcnow(), as_utc(send_at)
    if send_at <= now:
        raise InvalidInput("the send time is in the past: use send now instead")
    with db.session() as session:
        _, articles, edition = one_off_edition(session, settings, slug, one_off, now)
        edition.status = EditionStatus.scheduled
        edition.scheduled_for, edition.started_at = send_at, None
        session.add(edition)
        session.flush()
        attach_articles(session, edition, articles)
        session.commit()
        return edition.id


def send_one_off(db: Database, settings: Settings, slug: str, one_off: OneOff) -> ComposeResult:
    """Compose a one-off edition now and queue it to every active subscriber."""
    now = utcnow()
    with db.session() as session:
        newsletter, articles, edition = one_off_edition(session, settings, slug, one_off, now)
        edition.status = EditionStatus.sending
        session.add(edition)
        session.flush()
        deliveries = start_sending(session, edition, newsletter, articles, now)
        session.commit()
        return ComposeResult(edition.id, True, None, len(articles), deliveries, note=edition.note)


@dataclass(frozen=True)
class Preview:
    """A rendered edition as one subscriber would get it, without sending anything."""

    subject: str
    html: str
    text: str
    message: bytes
    articles: list[str]
    html_bytes: int
    sender: str
    #: Which articles were left out to fit the size limit, if any.
    note: str | None = None


def preview(
    db: Database, settings: Settings, slug: str, one_off: OneOff, subscriber_email: str | None
) -> Preview:
    """Render what ``digest send`` would send now, personalised for one (sample) subscriber."""
    now = utcnow()
    with db.session() as session:
        newsletter, articles, edition = one_off_edition(session, settings, slug, one_off, now)
        subscription_id, email, name = (
            subscription_for(session, newsletter.id, subscriber_email)
            if subscriber_email
            else (0, "reader@example.org", None)
        )
    edition.id = 0  # never stored: links in the preview point at no real edition
    mail = edition_mail(settings, edition, newsletter)
    html, text = mail.parts_for(mail.personal(subscription_id, email, name))
    message = mail.message_for(subscription_id, email, name, "<preview@tidings.invalid>")
    assert edition.subject is not None and edition.html_body is not None
    return Preview(
        edition.subject,
        html,
        text,
        message,
        [a.title for a in articles],
        len(html.encode()),  # as the reader gets it (the stored form has slot markers)
        newsletter.from_address,
        edition.note,
    )
