"""Newsletters and their sources: create, list, look up."""

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.catalog.counts import subscription_counts
from tidings.catalog.defaults import DEFAULT_SCHEDULE as DEFAULT_SCHEDULE  # re-exported
from tidings.catalog.feedguard import check_feed_url
from tidings.catalog.readerfacing import (
    check_footer_text,
    check_postal_address,
    check_utm_source,
)
from tidings.catalog.urls import canonical_url, web_origins
from tidings.crontab import crontab_trigger, fire_times
from tidings.db.clauses import KeysetPage, keyset_page
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Cadence,
    Newsletter,
    Source,
    SourceKind,
    SubscriptionStatus,
)
from tidings.errors import Conflict, FeedError, InvalidInput, NotFound
from tidings.mail.addresses import (
    clean_name,
    format_mailbox,
    normalise_email,
    parse_mailbox,
)
from tidings.text import as_sentence

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_TEMPLATE_SET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
T = TypeVar("T")


@dataclass(frozen=True)
class NewsletterSpec:
    """What an admin gives to create a newsletter (validated by :func:`create_newsletter`)."""

    slug: str
    name: str
    sender: str
    reply_to: str | None = None
    schedule: str = DEFAULT_SCHEDULE
    timezone: str = "UTC"
    feeds: list[str] = field(default_factory=list)
    min_articles: int = 1
    max_articles: int = 20
    template_set: str = "digest"
    weekly_schedule: str | None = None
    #: Origins whose embedded sign-up form subscribes in one step (see ``catalog.urls``).
    allowed_origins: tuple[str, ...] = ()
    #: Send at each reader's own time of day (the schedule's time in the reader's zone).
    reader_time: bool = False
    #: Shown in every digest's footer (see ``catalog.readerfacing`` for the rules).
    postal_address: str | None = None
    footer_text: str | None = None
    #: Mail a welcome when a subscription becomes active.
    welcome_enabled: bool = True
    #: Show the images the feeds give with their articles.
    show_images: bool = True
    #: When set, article links carry utm_source=this, utm_medium=email, utm_campaign=edition.
    utm_source: str | None = None


@dataclass(frozen=True)
class NewsletterSummary:
    """A newsletter with the counts an overview shows."""

    slug: str
    name: str
    sender: str
    schedule: str
    timezone: str
    sources: int
    articles: int
    active_subscribers: int
    pending_subscribers: int


def sender_of(newsletter: Newsletter) -> str:
    """The newsletter's sender as people edit it, ``"Daily, The Paper" <x@example.ge>``:
    quoted where needed, so the console form and the API read it back unchanged."""
    return format_mailbox(newsletter.from_name, newsletter.from_address)


#: The most articles an edition may be asked to carry (an edition far below it already meets
#: the size limit; a larger number is a typo, and would not fit the column).
ARTICLES_AT_MOST = 1000


def validate_schedule(cron: str, timezone: str) -> None:
    """Raise :class:`InvalidInput` unless ``cron`` is a 5-field crontab and ``timezone`` IANA."""
    _check_timezone(timezone)
    _check_cron(cron, timezone)


def _check_timezone(timezone: str) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"The time zone {timezone!r} is not an IANA time zone, such as Asia/Tbilisi."
        ) from None


def _check_cron(cron: str, timezone: str) -> None:
    try:
        trigger = crontab_trigger(cron, timezone)
    except ValueError as exc:
        raise InvalidInput(
            f"The schedule {cron!r} is not a crontab line (minute hour day month weekday): {exc}."
        ) from None
    # A line that names only days no month has ('0 0 31 2,4,6,9,11 *') is well formed and
    # never sends: refused here, where someone typed it, not found out by silence.
    if next(fire_times(trigger, datetime.now(UTC)), None) is None:
        raise InvalidInput(
            f"The schedule {cron!r} never sends: none of the months it names has that day."
        )


class SettingsRefused(InvalidInput):
    """Newsletter settings that are not acceptable: one sentence per setting, by the names
    :class:`NewsletterSpec` uses, so a form can show each beside its field."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


class _Checks:
    """Runs one check per setting and keeps each refusal's sentence under its name."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}

    def run(self, name: str, check: Callable[[], T], lead: str = "") -> T | None:
        """``check``'s result, or None with its refusal kept (after ``lead``, if given)."""
        try:
            return check()
        except InvalidInput as exc:
            self.problems.setdefault(name, as_sentence(lead + str(exc)))
            return None

    def refuse(self, name: str, sentence: str) -> None:
        self.problems.setdefault(name, sentence)


def _check_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise InvalidInput(
            "The slug must be lower-case letters, digits and hyphens, at most 64 of them."
        )
    return slug


def _check_name(raw: str) -> str:
    name = clean_name(raw)
    if not name:
        raise InvalidInput("The name is empty.")
    return name


def _check_articles(checks: _Checks, spec: NewsletterSpec) -> None:
    if spec.min_articles < 0:
        checks.refuse("min_articles", "The least number of articles cannot be below 0.")
    if spec.max_articles < 1:
        checks.refuse("max_articles", "An edition needs room for at least one article.")
    elif spec.max_articles > ARTICLES_AT_MOST:
        checks.refuse("max_articles", f"An edition carries at most {ARTICLES_AT_MOST:,} articles.")
    elif spec.min_articles > spec.max_articles:
        checks.refuse(
            "min_articles", "The least number of articles is more than the most an edition takes."
        )


def _check_template_set(name: str, sets: Collection[str] | None) -> None:
    if not _TEMPLATE_SET.match(name):
        raise InvalidInput("The template set must be a plain folder name under email/.")
    if sets is not None and name not in sets:
        known = ", ".join(sorted(sets)) or "none"
        raise InvalidInput(f"There is no template set {name!r}; the sets are: {known}.")


def _validated(
    spec: NewsletterSpec, template_sets: Collection[str] | None = None
) -> dict[str, object]:
    """The newsletter's columns from ``spec``, or :class:`SettingsRefused` naming each
    problem. ``template_sets``, when given, are the sets a newsletter may name."""
    checks = _Checks()
    slug = checks.run("slug", lambda: _check_slug(spec.slug))
    name = checks.run("name", lambda: _check_name(spec.name))
    mailbox = checks.run(
        "sender", lambda: parse_mailbox(spec.sender), "The sender cannot be used: "
    )
    reply_to = checks.run(
        "reply_to",
        lambda: normalise_email(spec.reply_to) if spec.reply_to else None,
        "The Reply-To address cannot be used: ",
    )
    checks.run("timezone", lambda: _check_timezone(spec.timezone))
    zone = "UTC" if "timezone" in checks.problems else spec.timezone
    checks.run("schedule", lambda: _check_cron(spec.schedule, zone))
    weekly = (spec.weekly_schedule or "").strip() or None
    if weekly is not None:
        checks.run("weekly_schedule", lambda: _check_cron(weekly, zone))
    _check_articles(checks, spec)
    checks.run("template_set", lambda: _check_template_set(spec.template_set, template_sets))
    origins = checks.run("allowed_origins", lambda: web_origins(spec.allowed_origins))
    postal = checks.run("postal_address", lambda: check_postal_address(spec.postal_address))
    footer = checks.run("footer_text", lambda: check_footer_text(spec.footer_text))
    utm_source = checks.run("utm_source", lambda: check_utm_source(spec.utm_source))
    if checks.problems or mailbox is None:
        raise SettingsRefused(checks.problems)
    from_name, from_address = mailbox
    return {
        "slug": slug,
        "name": name,
        "from_name": from_name or name,
        "from_address": from_address,
        "reply_to": reply_to,
        "schedule_cron": spec.schedule,
        "timezone": spec.timezone,
        "min_articles": spec.min_articles,
        "max_articles": spec.max_articles,
        "template_set": spec.template_set,
        "weekly_schedule_cron": weekly,
        "allowed_origins": origins,
        "reader_time": bool(spec.reader_time),
        "postal_address": postal,
        "footer_text": footer,
        "welcome_enabled": bool(spec.welcome_enabled),
        "show_images": bool(spec.show_images),
        "utm_source": utm_source,
    }


def _feed_url(url: str, allow_private: bool) -> str:
    """The canonical feed URL; refused up front if its host is not public (unless allowed)."""
    canonical = canonical_url(url)
    check_feed_url(canonical, allow_private)
    return canonical


def check_settings(spec: NewsletterSpec, template_sets: Collection[str] | None = None) -> None:
    """:class:`SettingsRefused` naming each problem of ``spec`` (its feeds aside), saving
    nothing: for a form that found other mistakes first and shows them all at once."""
    _validated(spec, template_sets)


def _newsletter_from_spec(
    spec: NewsletterSpec, allow_private: bool, template_sets: Collection[str] | None
) -> Newsletter:
    """The new newsletter with its feeds, or :class:`SettingsRefused` naming every problem,
    the feed list's among them."""
    problems: dict[str, str] = {}
    values: dict[str, object] = {}
    try:
        values = _validated(spec, template_sets)
    except SettingsRefused as exc:
        problems.update(exc.problems)
    try:
        feed_urls = list(dict.fromkeys(_feed_url(url, allow_private) for url in spec.feeds))
    except (InvalidInput, FeedError) as exc:
        problems["feeds"] = as_sentence(f"A feed cannot be used: {exc}")
    if problems:
        raise SettingsRefused(problems)
    newsletter = Newsletter(**values)
    newsletter.sources = [Source(kind=SourceKind.feed, url=url) for url in feed_urls]
    return newsletter


def create_newsletter(
    db: Database,
    spec: NewsletterSpec,
    *,
    allow_private: bool = False,
    template_sets: Collection[str] | None = None,
) -> Newsletter:
    """Create a newsletter with its feed sources; :class:`Conflict` if the slug is taken.

    ``allow_private`` is the TIDINGS_FEED_ALLOW_PRIVATE setting (feeds on private addresses);
    ``template_sets``, when given, the sets it may name (``mail.templates.template_sets``).
    """
    newsletter = _newsletter_from_spec(spec, allow_private, template_sets)
    with db.session() as session:
        session.add(newsletter)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raise Conflict(f"A newsletter with the slug {spec.slug!r} exists already.") from None
    return newsletter


def update_newsletter(
    db: Database,
    slug: str,
    spec: NewsletterSpec,
    *,
    template_sets: Collection[str] | None = None,
) -> None:
    """Change a newsletter's settings (its slug stays: it is in every link already sent)."""
    values = _validated(NewsletterSpec(**{**spec.__dict__, "slug": slug}), template_sets)
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        for column, value in values.items():
            setattr(newsletter, column, value)
        session.commit()


def _spec_of(newsletter: Newsletter) -> NewsletterSpec:
    """A stored newsletter's settings as a spec (its feeds left out: they are sources)."""
    return NewsletterSpec(
        slug=newsletter.slug,
        name=newsletter.name,
        sender=sender_of(newsletter),
        reply_to=newsletter.reply_to,
        schedule=newsletter.schedule_cron,
        timezone=newsletter.timezone,
        min_articles=newsletter.min_articles,
        max_articles=newsletter.max_articles,
        template_set=newsletter.template_set,
        weekly_schedule=newsletter.weekly_schedule_cron,
        allowed_origins=tuple(newsletter.allowed_origins or ()),
        reader_time=newsletter.reader_time,
        postal_address=newsletter.postal_address,
        footer_text=newsletter.footer_text,
        welcome_enabled=newsletter.welcome_enabled,
        show_images=newsletter.show_images,
        utm_source=newsletter.utm_source,
    )


def change_newsletter(
    db: Database,
    slug: str,
    changes: Mapping[str, Any],
    *,
    template_sets: Collection[str] | None = None,
) -> Newsletter:
    """Change some settings of a newsletter, named as :class:`NewsletterSpec` names them (the
    others stay; its slug and feeds are not changed here): the newsletter as changed, or
    :class:`InvalidInput` naming the problem, and nothing changed."""
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        values = _validated(replace(_spec_of(newsletter), **changes), template_sets)
        for column, value in values.items():
            setattr(newsletter, column, value)
        session.commit()
        return newsletter


def add_feed(db: Database, slug: str, url: str, *, allow_private: bool = False) -> None:
    """Add a feed source; :class:`Conflict` if the newsletter has it already, and
    :class:`InvalidInput` for a non-public address unless ``allow_private``."""
    feed_url = _feed_url(url, allow_private)
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        session.add(Source(newsletter_id=newsletter.id, kind=SourceKind.feed, url=feed_url))
        try:
            session.commit()
        except IntegrityError:
            raise Conflict("The newsletter has this feed already.") from None


def remove_source(db: Database, slug: str, source_id: int) -> None:
    """Remove a feed source; its articles go with it (editions keep their rendered copy)."""
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        source = session.get(Source, source_id)
        if source is None or source.newsletter_id != newsletter.id:
            raise NotFound("There is no such source.")
        session.delete(source)
        session.commit()


def newsletter_by_slug(session: Session, slug: str) -> Newsletter:
    """The newsletter named ``slug``, or :class:`NotFound`."""
    newsletter = session.scalar(select(Newsletter).where(Newsletter.slug == slug))
    if newsletter is None:
        raise NotFound(f"There is no newsletter {slug!r}.")
    return newsletter


def find_newsletter(db: Database, slug: str) -> Newsletter | None:
    """The newsletter named ``slug``, or None (a public page answers 404)."""
    with db.session() as session:
        try:
            return newsletter_by_slug(session, slug)
        except NotFound:
            return None


def push_source(session: Session, newsletter: Newsletter) -> Source:
    """The newsletter's inbox for pushed articles, created on first use."""
    source = session.scalar(
        select(Source).where(Source.newsletter_id == newsletter.id, Source.kind == SourceKind.push)
    )
    if source is None:
        source = Source(newsletter_id=newsletter.id, kind=SourceKind.push)
        session.add(source)
        session.flush()
    return source


def newsletter_page(db: Database, after: int, size: int) -> KeysetPage[Newsletter]:
    """One page of newsletters in id order, after the id ``after``."""
    with db.session() as session:
        page = keyset_page(session, select(Newsletter.id, Newsletter), Newsletter.id, after, size)
    return KeysetPage([newsletter for _, newsletter in page.rows], page.next_after)


def list_newsletters(db: Database) -> list[NewsletterSummary]:
    """Every newsletter with source, article and subscriber counts (one grouped query each)."""
    with db.session() as session:
        source_counts: dict[int, int] = {
            newsletter_id: count
            for newsletter_id, count in session.execute(
                select(Source.newsletter_id, func.count()).group_by(Source.newsletter_id)
            )
        }
        article_counts: dict[int, int] = {
            newsletter_id: count
            for newsletter_id, count in session.execute(
                select(Source.newsletter_id, func.count(Article.id))
                .join(Article, Article.source_id == Source.id)
                .group_by(Source.newsletter_id)
            )
        }
        status_counts = subscription_counts(session)
        newsletters = session.scalars(select(Newsletter).order_by(Newsletter.slug)).all()
        return [
            NewsletterSummary(
                slug=n.slug,
                name=n.name,
                sender=sender_of(n),
                schedule=n.schedule_cron,
                timezone=n.timezone,
                sources=source_counts.get(n.id, 0),
                articles=article_counts.get(n.id, 0),
                active_subscribers=status_counts.get((n.id, SubscriptionStatus.active), 0),
                pending_subscribers=status_counts.get((n.id, SubscriptionStatus.pending), 0),
            )
            for n in newsletters
        ]


@dataclass(frozen=True)
class NewsletterName:
    id: int
    slug: str
    name: str


def newsletter_names(db: Database) -> list[NewsletterName]:
    """Every newsletter's id, slug and name, for pickers."""
    with db.session() as session:
        rows = session.execute(
            select(Newsletter.id, Newsletter.slug, Newsletter.name).order_by(Newsletter.name)
        )
        return [NewsletterName(*row) for row in rows]


def newsletter_with_sources(db: Database, slug: str) -> tuple[Newsletter, list[Source]]:
    """A newsletter and its sources (feeds first, by id), for the console."""
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        sources = session.scalars(
            select(Source).where(Source.newsletter_id == newsletter.id).order_by(Source.id)
        ).all()
        return newsletter, list(sources)


@dataclass(frozen=True)
class NewsletterSchedule:
    """One cadence a newsletter is composed in: its crontab line, in the newsletter's zone."""

    newsletter_id: int
    slug: str
    cadence: Cadence
    cron: str
    timezone: str


def newsletter_schedules(db: Database) -> list[NewsletterSchedule]:
    """Every newsletter's schedules by newsletter id: daily, then weekly when it has a weekly
    crontab line (what the scheduler runs)."""
    with db.session() as session:
        found = []
        for n in session.scalars(select(Newsletter).order_by(Newsletter.id)):
            found.append(
                NewsletterSchedule(n.id, n.slug, Cadence.daily, n.schedule_cron, n.timezone)
            )
            if n.weekly_schedule_cron:
                weekly = n.weekly_schedule_cron
                found.append(NewsletterSchedule(n.id, n.slug, Cadence.weekly, weekly, n.timezone))
        return found
