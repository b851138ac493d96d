"""Fitting an edition into the size limit: what is left out, what is said, when it fails."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.builders import articles, newsletter, subscribers
from tidings.compose.failures import FailReason
from tidings.compose.fit import render_to_fit
from tidings.compose.oneoff import preview, send_one_off
from tidings.compose.render import MAX_HTML_BYTES, EditionTooLarge, RenderedEdition, render_edition
from tidings.compose.service import OneOff, compose_scheduled
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Edition, EditionArticle, EditionStatus, Newsletter
from tidings.ingest.service import push_articles
from tidings.mail.templates import email_environment, load_triplet

NOW = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)
SLOT = NOW
#: Each such URL appears twice in the HTML: about 20 KB an article, so four or so fit.
LONG_URL_BYTES = 10 * 1024
GIANT_URL_BYTES = 120 * 1024


def _newsletter() -> Newsletter:
    return Newsletter(
        slug="daily",
        name="The Daily Messenger",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        schedule_cron="0 8 * * *",
        timezone="Asia/Tbilisi",
        template_set="digest",
    )


def _article(i: int, url_bytes: int = 0) -> Article:
    path = "x" * url_bytes
    return Article(
        id=i,
        title=f"Story {i}: Abashidze’s budget passes",
        url=f"https://messenger.example.ge/{i}?{path}",
        byline="By Messenger Staff",
        section="Economy",
        summary="Parliament voted late on Thursday.",
        published_at=NOW - timedelta(hours=i),
    )


class Renders:
    """The real render step, counting how often fitting calls it."""

    def __init__(self) -> None:
        self.templates = load_triplet(email_environment(None), "digest")
        self.newsletter = _newsletter()
        self.calls = 0

    def __call__(self, chosen: list[Article]) -> RenderedEdition:
        self.calls += 1
        return render_edition(self.templates, self.newsletter, chosen, issued_at=NOW)


def test_an_edition_that_fits_is_rendered_once_and_left_whole() -> None:
    render = Renders()
    chosen = [_article(i) for i in range(5)]
    fitted = render_to_fit(render, chosen)
    assert fitted.articles == chosen and fitted.note is None and render.calls == 1


def test_too_large_drops_articles_from_the_end_until_it_fits() -> None:
    render = Renders()
    chosen = [_article(i, LONG_URL_BYTES) for i in range(12)]
    fitted = render_to_fit(render, chosen)
    kept = len(fitted.articles)
    assert 1 <= kept < 12 and fitted.articles == chosen[:kept]
    assert len(fitted.rendered.html.encode()) <= MAX_HTML_BYTES
    with pytest.raises(EditionTooLarge):  # one more would not have fitted: as few dropped
        render(chosen[: kept + 1])
    assert fitted.dropped == chosen[kept:] and not fitted.too_large_alone
    assert fitted.note is not None
    assert fitted.note.startswith(f"dropped the last {12 - kept} article(s) to fit")
    assert f"#{chosen[-1].id} “Story 11" in fitted.note
    assert render.calls <= 7  # a binary search, not one render per article


def test_an_article_too_large_alone_is_left_out_wherever_it_stands() -> None:
    render = Renders()
    giant = _article(1, GIANT_URL_BYTES)
    chosen = [_article(0), giant, _article(2), _article(3)]
    fitted = render_to_fit(render, chosen)
    assert fitted.articles == [chosen[0], chosen[2], chosen[3]]
    assert fitted.too_large_alone == [giant] and not fitted.dropped
    assert fitted.note is not None and "too large to fit even alone: #1 “Story 1" in fitted.note


def test_not_one_article_fitting_fails_with_the_render_steps_reason() -> None:
    reason = r"not even one article fits: the HTML part is \d+ KB"
    with pytest.raises(EditionTooLarge, match=reason):
        render_to_fit(Renders(), [_article(0, GIANT_URL_BYTES), _article(1, GIANT_URL_BYTES)])


def test_a_long_note_names_ten_and_counts_the_rest() -> None:
    fitted = render_to_fit(Renders(), [_article(i, 40 * 1024) for i in range(14)])
    assert fitted.note is not None and fitted.note.endswith("and 3 more")


def test_many_articles_too_large_alone_are_screened_once_not_searched_around() -> None:
    """60 articles, every other one too large alone: each is rendered alone at most once and
    one search runs over the rest (it was 224 renders, now at most n + 2 log2(n) + 3)."""
    render = Renders()
    chosen = [_article(i, GIANT_URL_BYTES if i % 2 else 0) for i in range(60)]
    fitted = render_to_fit(render, chosen)
    assert fitted.articles == chosen[::2] and fitted.too_large_alone == chosen[1::2]
    assert not fitted.dropped
    assert fitted.note is not None
    assert fitted.note.startswith("left out 30 article(s) too large to fit even alone: #1 “")
    assert fitted.note.endswith("and 20 more")
    assert render.calls <= 60 + 2 * 6 + 3


def test_giants_before_the_cut_are_left_out_and_those_after_it_are_dropped() -> None:
    """The same answer as one giant at a time gave: giants before the point where the
    edition stops fitting are named as too large alone, the rest from there on as dropped."""
    render = Renders()
    chosen = [_article(i, GIANT_URL_BYTES if i % 3 == 1 else LONG_URL_BYTES) for i in range(30)]
    fitted = render_to_fit(render, chosen)
    kept = [a.id for a in fitted.articles]
    assert kept == [i for i in range(30) if i % 3 != 1][: len(kept)] and 1 <= len(kept) < 20
    cut = kept[-1] + 1
    assert [a.id for a in fitted.too_large_alone] == [i for i in range(cut) if i % 3 == 1]
    assert [a.id for a in fitted.dropped] == list(range(cut, 30))
    with pytest.raises(EditionTooLarge):  # the next article that fits alone did not fit too
        render(fitted.articles + [a for a in fitted.dropped if a.id % 3 != 1][:1])
    assert render.calls <= 30 + 2 * 5 + 4


def _edition(db: Database, edition_id: int) -> tuple[Edition, list[int]]:
    with db.session() as session:
        edition = session.get_one(Edition, edition_id)
        ids = session.scalars(
            select(EditionArticle.article_id)
            .where(EditionArticle.edition_id == edition_id)
            .order_by(EditionArticle.position)
        ).all()
        return edition, list(ids)


def _push_long(db: Database, count: int, url_bytes: int, published: datetime) -> None:
    """Articles with long URLs, stored as if taken before ingest capped URL length (the
    door now refuses them, so the rows are lengthened in place)."""
    report = push_articles(
        db,
        "daily",
        [
            {
                "url": f"https://messenger.example.ge/long/{n}",
                "guid": f"long-{n}",
                "title": f"Long story {n}",
                "published": published + timedelta(minutes=n),
            }
            for n in range(count)
        ],
    )
    assert not report.rejected
    with db.session() as session:
        session.execute(
            update(Article)
            .where(Article.guid.like("long-%"))
            .values(url=Article.url + "?" + "y" * url_bytes)
        )
        session.commit()


def test_a_scheduled_edition_is_trimmed_and_says_so(db: Database, settings: Settings) -> None:
    nl = newsletter(db, max_articles=12)
    _push_long(db, 12, LONG_URL_BYTES, SLOT - timedelta(hours=3))
    subscribers(db, "daily", 2)
    result = compose_scheduled(db, settings, nl, SLOT)
    assert result.status == EditionStatus.sending and 1 <= result.articles < 12
    assert result.deliveries == 2
    edition, kept = _edition(db, result.edition_id)
    assert len(kept) == result.articles and edition.note == result.note
    assert edition.note is not None and "to fit the size limit" in edition.note
    assert edition.html_body is not None and len(edition.html_body.encode()) <= MAX_HTML_BYTES


def test_a_slot_where_nothing_fits_is_failed_once_and_its_articles_wait(
    db: Database, settings: Settings
) -> None:
    nl = newsletter(db)
    _push_long(db, 1, GIANT_URL_BYTES, SLOT - timedelta(hours=3))
    subscribers(db, "daily", 2)
    failed = compose_scheduled(db, settings, nl, SLOT)
    assert (failed.created, failed.status, failed.skip_reason, failed.deliveries) == (
        True,
        EditionStatus.failed,
        FailReason.too_large,
        0,
    )
    again = compose_scheduled(db, settings, nl, SLOT)  # the next tick
    assert (again.created, again.edition_id) == (False, failed.edition_id)
    edition, kept = _edition(db, failed.edition_id)
    assert edition.status == EditionStatus.failed and kept == []
    assert edition.note is not None and "not even one article fits" in edition.note
    # A failed slot's articles are still new for the next one (the giant is left out then).
    fine = articles(db, "daily", 1, SLOT + timedelta(hours=1), seen=SLOT + timedelta(hours=1))
    next_day = compose_scheduled(db, settings, nl, SLOT + timedelta(days=1))
    assert next_day.status == EditionStatus.sending and next_day.deliveries == 2
    edition, kept = _edition(db, next_day.edition_id)
    assert kept == fine
    assert edition.note is not None and "too large to fit even alone" in edition.note


def test_an_automatic_one_off_is_trimmed_but_chosen_articles_are_the_editors_call(
    db: Database, settings: Settings
) -> None:
    newsletter(db, max_articles=12)
    now = datetime.now(UTC)
    _push_long(db, 12, LONG_URL_BYTES, now - timedelta(hours=3))
    subscribers(db, "daily", 1)
    shown = preview(db, settings, "daily", OneOff(article_ids=[]), None)
    assert shown.note is not None and 1 <= len(shown.articles) < 12
    result = send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    assert (result.articles, result.note) == (len(shown.articles), shown.note)
    with db.session() as session:
        all_ids = list(session.scalars(select(Article.id).order_by(Article.id)))
    with pytest.raises(EditionTooLarge):
        send_one_off(db, settings, "daily", OneOff(article_ids=all_ids))
