"""Compose editions: scheduled ones per slot (one-offs and previews: :mod:`oneoff`).

Composing is one transaction: the edition row, its articles, its rendered content and the
fan-out of its deliveries appear together or not at all. The (newsletter, slot) constraint
makes a second compose of the same slot a no-op however many schedulers race for it.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jinja2 import TemplateError
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.compose.failures import (
    NOTE_LIMIT,
    FailReason,
    SkipReason,
    TemplateFailed,
    failure_of,
    is_transient,
    template_failure,
)
from tidings.compose.fit import FittedEdition, render_to_fit
from tidings.compose.render import RenderedEdition, render_edition
from tidings.compose.select import select_articles
from tidings.compose.variants import plan_variants, store_variants
from tidings.compose.variants import sections_of as sections_of
from tidings.compose.zones import zone_rule
from tidings.config import Settings
from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Cadence,
    Edition,
    EditionArticle,
    EditionKind,
    EditionStatus,
    Newsletter,
)
from tidings.db.types import utcnow
from tidings.deliver.ledger import fan_out
from tidings.deliver.ledger.fanout import readers_of, section_choices
from tidings.mail.edition import address_domain
from tidings.mail.templates import email_environment, load_triplet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComposeResult:
    """What composing did; ``created`` is False when the slot already had its edition.

    A failed slot is recorded too (``status`` failed, ``note`` why), so it is not tried
    again on every tick; ``note`` also says which articles were left out to fit.
    """

    edition_id: int
    created: bool
    skip_reason: SkipReason | FailReason | None = None
    articles: int = 0
    deliveries: int = 0
    status: EditionStatus = EditionStatus.sending
    note: str | None = None


@dataclass(frozen=True)
class OneOff:
    """An editor's one-off edition: chosen articles (else the usual selection), intro, subject."""

    article_ids: list[int]
    intro_markdown: str | None = None
    subject: str | None = None
    created_by: str | None = None


def renderer(
    settings: Settings,
    newsletter: Newsletter,
    issued_at: datetime,
    one_off: OneOff | None = None,
    cadence: Cadence = Cadence.daily,
    zone: str | None = None,
) -> Callable[[list[Article]], RenderedEdition]:
    """Render the edition for a choice of articles; the templates are loaded once, as fitting
    the size limit may render a few choices. A broken template is a :class:`TemplateFailed`
    naming the file and line, for every front door to show."""
    try:
        environment = email_environment(settings.templates_dir)
        templates = load_triplet(environment, newsletter.template_set)
    except TemplateError as exc:
        raise TemplateFailed(template_failure(exc)) from exc

    def render(articles: list[Article]) -> RenderedEdition:
        try:
            return render_edition(
                templates,
                newsletter,
                articles,
                issued_at=issued_at,
                intro_markdown=one_off.intro_markdown if one_off else None,
                subject=one_off.subject if one_off else None,
                weekly=cadence == Cadence.weekly,
                zone=zone,
            )
        except TemplateError as exc:
            raise TemplateFailed(template_failure(exc)) from exc

    return render


def _existing(
    session: Session, newsletter_id: int, cadence: Cadence, slot: datetime, zone: str = ""
) -> Edition | None:
    return session.scalar(
        select(Edition).where(
            Edition.newsletter_id == newsletter_id,
            Edition.cadence == cadence,
            Edition.slot == slot,
            Edition.zone == zone,
        )
    )


def attach_articles(session: Session, edition: Edition, articles: list[Article]) -> None:
    session.add_all(
        EditionArticle(edition_id=edition.id, article_id=a.id, position=position)
        for position, a in enumerate(articles)
    )


def fan_out_edition(
    session: Session,
    edition: Edition,
    newsletter: Newsletter,
    sections: list[str],
    now: datetime,
    *,
    settings: Settings,
    articles: Sequence[Article],
) -> int:
    """Queue the edition to every active subscriber who wants one of ``sections``: for a
    scheduled edition of a newsletter with a weekly digest those of its cadence, else all;
    for an edition of one readers' zone (a reader-time newsletter's), only that zone's.

    A reader who chose some of its sections gets a variant of the edition's ``articles`` of
    those only, rendered once per distinct choice (:mod:`~tidings.compose.variants`).
    """
    domain = address_domain(newsletter.from_address)
    # Only a newsletter that offers both cadences splits its readers by them.
    split = edition.kind == EditionKind.scheduled and newsletter.offers_weekly
    cadence = edition.cadence if split else None
    in_zone = zone_rule(session, newsletter, edition.zone, edition.cadence)
    variants: dict[int, frozenset[str]] = {}
    if articles:
        readers = readers_of(session, newsletter.id, sections, cadence, in_zone)
        variants = section_variants(session, settings, edition, newsletter, articles, readers)
    return fan_out(
        session,
        edition.id,
        newsletter.id,
        domain,
        now,
        sections,
        cadence,
        variants=variants,
        zone_rule=in_zone,
    )


def section_variants(
    session: Session,
    settings: Settings,
    edition: Edition,
    newsletter: Newsletter,
    articles: Sequence[Article],
    readers: list[ColumnElement[bool]],
) -> dict[int, frozenset[str]]:
    """The edition's variants for the distinct section choices among ``readers``, each
    rendered and stored once (same subject, intro and order as the edition): their ids,
    each with its sections."""
    carried = sections_of(articles)
    if len(carried) < 2 or settings.max_section_variants < 1:
        return {}  # off; or one section, which every choice it meets covers whole
    choices = section_choices(session, readers)
    plan = plan_variants(choices, carried, settings.max_section_variants)
    if not plan:
        return {}
    same = OneOff([], intro_markdown=edition.intro_markdown, subject=edition.subject)
    issued_at = edition.slot or edition.cutoff_at or edition.created_at
    zone = edition.zone or None
    render = renderer(settings, newsletter, issued_at, same, edition.cadence, zone)
    return store_variants(session, edition, articles, plan, render)


def start_sending(
    session: Session,
    edition: Edition,
    newsletter: Newsletter,
    articles: list[Article],
    now: datetime,
    *,
    settings: Settings,
) -> int:
    """Attach the edition's articles and fan it out, with its section variants (see
    :func:`fan_out_edition`)."""
    attach_articles(session, edition, articles)
    sections = sections_of(articles)
    return fan_out_edition(
        session, edition, newsletter, sections, now, settings=settings, articles=articles
    )


def _claim_slot(session: Session, edition: Edition) -> ComposeResult | None:
    """Insert the slot's edition; if another scheduler got there first, its edition."""
    session.add(edition)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        assert edition.slot is not None
        raced = _existing(
            session, edition.newsletter_id, edition.cadence, edition.slot, edition.zone
        )
        assert raced is not None
        return ComposeResult(raced.id, created=False)
    return None


def compose_scheduled(
    db: Database,
    settings: Settings,
    newsletter_id: int,
    slot: datetime,
    cadence: Cadence = Cadence.daily,
    zone: str = "",
) -> ComposeResult:
    """Compose and start the ``cadence`` edition of ``slot`` once; later calls return the
    same edition. ``zone`` names the readers' zone of a reader-time newsletter's edition:
    it goes to the readers of that zone only, with that zone's own next articles.

    A slot that cannot be composed (a broken template, not one article fits the size limit,
    bad data) is recorded as a failed edition with its reason, so it is reported once and
    never stops the other slots; a passing database error (a lock, a deadlock, a lost
    connection) is raised instead, so the slot is left alone and the next tick tries it again.
    """
    try:
        return _compose_slot(db, settings, newsletter_id, slot, cadence, zone)
    except Exception as exc:
        if is_transient(exc):
            raise
        return _record_failed_slot(db, newsletter_id, slot, cadence, exc, zone)


def _record_failed_slot(
    db: Database,
    newsletter_id: int,
    slot: datetime,
    cadence: Cadence,
    exc: Exception,
    zone: str = "",
) -> ComposeResult:
    """Keep the slot as a failed edition (unless another scheduler composed it meanwhile)."""
    reason, note = failure_of(exc)
    with db.session() as session:
        edition = Edition(
            newsletter_id=newsletter_id,
            kind=EditionKind.scheduled,
            cadence=cadence,
            slot=slot,
            zone=zone,
            cutoff_at=slot,
            status=EditionStatus.failed,
            skip_reason=reason.value,
            note=note,
            finished_at=utcnow(),
        )
        raced = _claim_slot(session, edition)
        if raced is not None:
            return raced
        session.commit()
    log.error(
        "newsletter %d %s slot %s%s failed (edition %d): %s",
        newsletter_id,
        cadence.value,
        slot.isoformat(),
        f" for readers in {zone}" if zone else "",
        edition.id,
        note,
        exc_info=reason == FailReason.compose_error,  # an unexpected error: keep its trace
    )
    return ComposeResult(edition.id, True, reason, status=EditionStatus.failed, note=note)


def _compose_slot(
    db: Database,
    settings: Settings,
    newsletter_id: int,
    slot: datetime,
    cadence: Cadence,
    zone: str = "",
) -> ComposeResult:
    now = utcnow()
    with db.session() as session:
        newsletter = session.get_one(Newsletter, newsletter_id)
        existing = _existing(session, newsletter_id, cadence, slot, zone)
        if existing is not None:
            return ComposeResult(existing.id, created=False)
        articles = select_articles(session, newsletter, cutoff=slot, cadence=cadence, zone=zone)
        edition = Edition(
            newsletter_id=newsletter_id,
            kind=EditionKind.scheduled,
            cadence=cadence,
            slot=slot,
            zone=zone,
            cutoff_at=slot,
            status=EditionStatus.sending,
            started_at=now,
        )
        if len(articles) < max(newsletter.min_articles, 1):
            edition.status = EditionStatus.skipped
            edition.skip_reason = SkipReason.too_few_articles.value
            edition.started_at, edition.finished_at = None, now
            raced = _claim_slot(session, edition)
            if raced is not None:
                return raced
            session.commit()
            return ComposeResult(
                edition.id,
                True,
                SkipReason.too_few_articles,
                len(articles),
                status=EditionStatus.skipped,
            )
        render = renderer(settings, newsletter, slot, cadence=cadence, zone=zone or None)
        fitted = render_to_fit(render, articles)
        set_content(edition, fitted)
        raced = _claim_slot(session, edition)
        if raced is not None:
            return raced
        deliveries = start_sending(
            session, edition, newsletter, fitted.articles, now, settings=settings
        )
        session.commit()
        return ComposeResult(
            edition.id, True, None, len(fitted.articles), deliveries, note=fitted.note
        )


def set_content(edition: Edition, fitted: FittedEdition) -> None:
    """The rendered parts, and a note of any article left out to fit the size limit."""
    edition.subject = fitted.rendered.subject
    edition.html_body, edition.text_body = fitted.rendered.html, fitted.rendered.text
    edition.note = fitted.note


def due_drafts(db: Database, now: datetime) -> list[int]:
    """The scheduled drafts whose send time has come, oldest first."""
    with db.session() as session:
        return list(
            session.scalars(
                select(Edition.id)
                .where(Edition.status == EditionStatus.scheduled, Edition.scheduled_for <= now)
                .order_by(Edition.scheduled_for, Edition.id)
            )
        )


def record_failed_start(db: Database, edition_id: int, exc: Exception) -> bool:
    """Mark a scheduled draft that could not be started as failed, with the reason, so it is
    reported once and not tried again on every tick; False if it is no longer a draft."""
    _, note = failure_of(exc)
    with db.session() as session:
        moved = session.execute(
            update(Edition)
            .where(Edition.id == edition_id, Edition.status == EditionStatus.scheduled)
            .values(
                status=EditionStatus.failed,
                skip_reason=FailReason.start_error.value,
                note=f"could not be started: {note}"[:NOTE_LIMIT],
                finished_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
    if not row_count(moved):
        return False
    log.error("scheduled edition %d could not be started: %s", edition_id, note, exc_info=exc)
    return True
