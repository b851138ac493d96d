from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.compose.failures import SkipReason
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff, compose_scheduled
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, EditionArticle, EditionStatus

SLOT = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)  # 08:00 in Tbilisi


def _article_ids(db: Database, edition_id: int) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(EditionArticle.article_id)
                .where(EditionArticle.edition_id == edition_id)
                .order_by(EditionArticle.position)
            )
        )


def test_slot_is_composed_once_with_new_articles_newest_first(
    db: Database, settings: Settings
) -> None:
    nl = newsletter(db)
    old = articles(db, "daily", 2, SLOT - timedelta(days=3), seen=SLOT - timedelta(days=3))
    new = articles(db, "daily", 3, SLOT - timedelta(hours=5), seen=SLOT - timedelta(hours=5))
    future = articles(db, "daily", 1, SLOT + timedelta(hours=1), seen=SLOT - timedelta(hours=1))
    subscribers(db, "daily", 4)
    first = compose_scheduled(db, settings, nl, SLOT)
    assert (first.created, first.articles, first.deliveries) == (True, 3, 4)
    assert _article_ids(db, first.edition_id) == list(reversed(new))
    again = compose_scheduled(db, settings, nl, SLOT)
    assert (again.created, again.edition_id) == (False, first.edition_id)
    with db.session() as session:
        assert session.query(Delivery).count() == 4
        message_ids = session.scalars(select(Delivery.message_id)).all()
        assert len(set(message_ids)) == 4
    # The next slot takes what arrived since, and never an article sent already.
    later = articles(db, "daily", 1, SLOT + timedelta(hours=2), seen=SLOT + timedelta(hours=2))
    second = compose_scheduled(db, settings, nl, SLOT + timedelta(days=1))
    assert _article_ids(db, second.edition_id) == [later[0], future[0]]
    assert not set(old) & set(_article_ids(db, second.edition_id))


def test_too_few_articles_records_a_skipped_slot_and_sends_nothing(
    db: Database, settings: Settings
) -> None:
    nl = newsletter(db, min_articles=3)
    articles(db, "daily", 2, SLOT - timedelta(hours=3), seen=SLOT - timedelta(hours=3))
    subscribers(db, "daily", 2)
    result = compose_scheduled(db, settings, nl, SLOT)
    assert result.skip_reason == SkipReason.too_few_articles
    with db.session() as session:
        edition = session.scalars(select(Edition)).one()
        assert edition.status == EditionStatus.skipped
        assert edition.skip_reason == "too_few_articles"
        assert session.query(Delivery).count() == 0
    # A skipped slot does not move the cutoff: its articles wait for the next edition.
    articles(db, "daily", 1, SLOT + timedelta(hours=1), seen=SLOT + timedelta(hours=1))
    nxt = compose_scheduled(db, settings, nl, SLOT + timedelta(days=1))
    assert nxt.articles == 3 and nxt.deliveries == 2


def test_late_seen_article_is_still_picked_up(db: Database, settings: Settings) -> None:
    nl = newsletter(db)
    articles(db, "daily", 1, SLOT - timedelta(hours=2), seen=SLOT - timedelta(hours=2))
    compose_scheduled(db, settings, nl, SLOT)
    # published before the cutoff, but the feed delivered it after the edition went out
    late = articles(db, "daily", 1, SLOT - timedelta(minutes=10), seen=SLOT + timedelta(hours=1))
    nxt = compose_scheduled(db, settings, nl, SLOT + timedelta(days=1))
    assert _article_ids(db, nxt.edition_id) == late


def test_one_off_with_chosen_articles_in_order(db: Database, settings: Settings) -> None:
    newsletter(db)
    ids = articles(db, "daily", 4, SLOT - timedelta(hours=3))
    subscribers(db, "daily", 3)
    result = send_one_off(
        db, settings, "daily", OneOff(article_ids=[ids[2], ids[0]], subject="Election special")
    )
    assert (result.articles, result.deliveries) == (2, 3)
    assert _article_ids(db, result.edition_id) == [ids[2], ids[0]]
    with db.session() as session:
        edition = session.get_one(Edition, result.edition_id)
        assert edition.subject == "Election special"
        assert edition.slot is None
