"""One-off editions: an editor's send now, send later, and the preview of either."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
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
    sections_of,
    set_content,
    start_sending,
)
from tidings.config import Settings
from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Edition,
    EditionArticle,
    EditionKind,
    EditionStatus,
    Newsletter,
)
from tidings.db.types import as_utc, utcnow
from tidings.deliver.ledger.fanout import recipient_count
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.mail.edition import EditionMail, address_domain, edition_mail

#: The automatic choice found nothing new: said the same way on the web, the API and the CLI.
NO_NEW_ARTICLES = "There are no new articles since the last edition. Choose at least one article."
#: Whom a test is personalised for when the editor names no subscriber.
TEST_READER = ("Test Reader", "test-reader@example.invalid")


def _one_off_articles(
    session: Session, newsletter: Newsletter, one_off: OneOff, now: datetime
) -> list[Article]:
    if one_off.article_ids:
        return chosen_articles(session, newsletter, one_off.article_ids)
    articles = select_articles(session, newsletter, cutoff=now)
    if not articles:
        raise InvalidInput(NO_NEW_ARTICLES)
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
        deliveries = start_sending(session, edition, newsletter, articles, now, settings=settings)
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
    message = mail.message_for(subscription_id, email, name, _message_id("preview", mail))
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


def _message_id(kind: str, mail: EditionMail) -> str:
    """A proper Message-ID of its own for a message that is not a delivery (a preview, a
    test), on the newsletter's domain: random, so it tells its readers nothing of the server
    (``make_msgid`` puts in the time and the process id)."""
    return f"<tidings.{kind}.{secrets.token_hex(16)}@{address_domain(mail.sender)}>"


@dataclass(frozen=True)
class Proof:
    """An edition rendered once as a test, personalised for one reader; :meth:`message`
    gives each test address its own message (its own Message-ID)."""

    subject: str
    sender: str
    to_email: str
    to_name: str | None
    mail: EditionMail

    def message(self) -> bytes:
        return self.mail.message_for(0, self.to_email, self.to_name, _message_id("test", self.mail))


def proof(
    db: Database, settings: Settings, slug: str, one_off: OneOff, reader_email: str | None
) -> Proof:
    """The edition as a test: "[Test]" in the subject, a banner on top, personalised for the
    subscriber ``reader_email`` of the newsletter (else :data:`TEST_READER`), and links that
    unsubscribe nobody (:class:`EditionMail`'s test mode)."""
    now = utcnow()
    with db.session() as session:
        newsletter, _, edition = one_off_edition(session, settings, slug, one_off, now)
        if reader_email and reader_email.strip():
            _, email, name = subscription_for(session, newsletter.id, reader_email.strip())
        else:
            name, email = TEST_READER
    edition.id = 0  # never stored
    mail = edition_mail(settings, edition, newsletter, test=True)
    return Proof(mail.subject, newsletter.from_address, email, name, mail)


@dataclass(frozen=True)
class SendPlan:
    """What sending a one-off edition would do, for the editor to confirm first."""

    subject: str
    newsletter_name: str
    timezone: str
    articles: int
    #: Readers it would go to now: active, unsuppressed, wanting one of its sections.
    recipients: int
    #: When it would be sent (UTC); None: now.
    send_at: datetime | None = None
    #: The articles it would carry, in order: the editor's, or the automatic choice made
    #: now (the confirmation carries these, so what is sent is what was confirmed).
    article_ids: tuple[int, ...] = ()


def plan_one_off(db: Database, settings: Settings, slug: str, one_off: OneOff) -> SendPlan:
    """Render the edition (nothing is stored) and count its readers by fan-out's own rule."""
    with db.session() as session:
        newsletter, articles, edition = one_off_edition(session, settings, slug, one_off, utcnow())
        readers = recipient_count(session, newsletter.id, sections_of(articles))
        assert edition.subject is not None
        return SendPlan(
            edition.subject,
            newsletter.name,
            newsletter.timezone,
            len(articles),
            readers,
            article_ids=tuple(a.id for a in articles),
        )


@dataclass(frozen=True)
class ScheduledDraft:
    """A scheduled one-off edition as the builder loads it to edit."""

    edition_id: int
    slug: str
    status: EditionStatus
    subject: str | None
    intro_markdown: str | None
    article_ids: list[int]
    scheduled_for: datetime | None


def scheduled_draft(db: Database, edition_id: int) -> ScheduledDraft:
    """The edition with its articles in order (any status: the caller says what it allows)."""
    with db.session() as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"There is no edition {edition_id}.")
        newsletter = session.get_one(Newsletter, edition.newsletter_id)
        ids = list(
            session.scalars(
                select(EditionArticle.article_id)
                .where(EditionArticle.edition_id == edition_id)
                .order_by(EditionArticle.position)
            )
        )
        return ScheduledDraft(
            edition.id,
            newsletter.slug,
            edition.status,
            edition.subject,
            edition.intro_markdown,
            ids,
            edition.scheduled_for,
        )


@dataclass(frozen=True)
class DraftChanges:
    """An editor's changes to a scheduled edition; None keeps what it has. An empty subject
    goes back to the one made from the first headline; an empty intro removes it."""

    subject: str | None = None
    intro_markdown: str | None = None
    article_ids: list[int] | None = None
    #: The new send time, a UTC instant already read (:func:`tidings.compose.sendtime.send_time`).
    send_at: datetime | None = None


def not_scheduled(edition_id: int, status: EditionStatus) -> Conflict:
    return Conflict(
        f"Edition {edition_id} is {status.value}: only a scheduled edition can be changed."
    )


def check_changeable(draft: ScheduledDraft, article_ids: list[int] | None) -> None:
    """Refuse a change to a scheduled edition that :func:`update_scheduled` would refuse: one
    that has started (:class:`Conflict`), or one left without articles (``article_ids`` [];
    None keeps the edition's own)."""
    if draft.status != EditionStatus.scheduled:
        raise not_scheduled(draft.edition_id, draft.status)
    if not (draft.article_ids if article_ids is None else article_ids):
        raise InvalidInput("Choose at least one article.")


def update_scheduled(
    db: Database, settings: Settings, edition_id: int, changes: DraftChanges
) -> None:
    """Render the changed edition again and store it, in one transaction, only while it is
    still scheduled (one conditional UPDATE: the scheduler starting it at the same moment
    either waits and sends the new content, or has started and the change is refused)."""
    draft = scheduled_draft(db, edition_id)
    check_changeable(draft, changes.article_ids)
    ids = draft.article_ids if changes.article_ids is None else changes.article_ids
    intro = draft.intro_markdown if changes.intro_markdown is None else changes.intro_markdown
    subject = draft.subject if changes.subject is None else changes.subject
    one_off = OneOff(article_ids=ids, intro_markdown=intro or None, subject=subject or None)
    now = utcnow()
    with db.session() as session:
        _, articles, rendered = one_off_edition(session, settings, draft.slug, one_off, now)
        values: dict[str, object] = {
            "subject": rendered.subject,
            "intro_markdown": one_off.intro_markdown,
            "html_body": rendered.html_body,
            "text_body": rendered.text_body,
            "note": rendered.note,
        }
        if changes.send_at is not None:
            values["scheduled_for"] = changes.send_at
        moved = session.execute(
            update(Edition)
            .where(Edition.id == edition_id, Edition.status == EditionStatus.scheduled)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not row_count(moved):
            session.rollback()
            status = session.scalar(select(Edition.status).where(Edition.id == edition_id))
            raise not_scheduled(edition_id, status or EditionStatus.cancelled)
        session.execute(delete(EditionArticle).where(EditionArticle.edition_id == edition_id))
        rendered.id = edition_id  # never added: it only names the edition for its articles
        attach_articles(session, rendered, articles)
        session.commit()
