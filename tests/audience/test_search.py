"""Finding subscribers: the audience filter (text, newsletter, status), pages by id, the
count, and the filter named by slug; on SQLite and PostgreSQL."""

import pytest

from tests.audience.people import audience
from tidings.audience.search import PAGE_SIZE, AudienceFilter, audience_filter, count, search
from tidings.audience.service import add_subscriber
from tidings.catalog.counts import ReaderStatus
from tidings.db.engine import Database
from tidings.db.models import SubscriptionStatus
from tidings.errors import NotFound


def _found(db: Database, matching: AudienceFilter) -> list[str]:
    return [row.email for row in search(db, matching).rows]


def test_text_matches_email_or_name_in_any_case(db: Database) -> None:
    audience(db)
    assert _found(db, AudienceFilter(query="beridze")) == ["ana@example.ge"]
    assert _found(db, AudienceFilter(query="  ANA@ ")) == ["ana@example.ge"]
    assert _found(db, AudienceFilter(query="example.ge")) == [
        "ana@example.ge",
        "bob@example.ge",
        "cara_x@example.ge",
        "dato@example.ge",
        "eka@example.ge",
    ]
    assert _found(db, AudienceFilter(query="nobody")) == []


def test_like_wildcards_in_the_text_are_taken_literally(db: Database) -> None:
    audience(db)
    assert _found(db, AudienceFilter(query="a_x")) == ["cara_x@example.ge"]
    assert _found(db, AudienceFilter(query="o_")) == []  # "_" is no single-character wildcard
    assert _found(db, AudienceFilter(query="%")) == ["cara_x@example.ge"]  # "Cara 100%"


def test_newsletter_and_status_filter_on_one_subscription(db: Database) -> None:
    people = audience(db)
    daily, weekly = people.daily, people.weekly
    assert _found(db, AudienceFilter(daily)) == [
        "ana@example.ge",
        "bob@example.ge",
        "cara_x@example.ge",
    ]
    assert _found(db, AudienceFilter(status=SubscriptionStatus.active)) == [
        "ana@example.ge",
        "dato@example.ge",
    ]
    # Bob is pending in daily, but his address is suppressed after a hard bounce.
    assert _found(db, AudienceFilter(daily, SubscriptionStatus.pending)) == []
    assert _found(db, AudienceFilter(daily, ReaderStatus.bounced)) == ["bob@example.ge"]
    # Pending in weekly and active in daily are two subscriptions: no match for both at once.
    assert _found(db, AudienceFilter(weekly, SubscriptionStatus.pending)) == ["eka@example.ge"]
    assert _found(db, AudienceFilter(daily, SubscriptionStatus.active, "dato")) == []


def test_rows_say_who_is_suppressed_and_count_agrees(db: Database) -> None:
    audience(db)
    rows = search(db, AudienceFilter()).rows
    assert {row.email: row.suppressed for row in rows} == {
        "ana@example.ge": False,
        "bob@example.ge": True,
        "cara_x@example.ge": False,
        "dato@example.ge": False,
        "eka@example.ge": False,
    }
    assert rows[0].name == "Ana Beridze" and rows[0].created_at is not None
    assert count(db, AudienceFilter()) == 5
    assert count(db, AudienceFilter(status=SubscriptionStatus.active)) == 2
    assert count(db, AudienceFilter(query="nobody")) == 0


def test_pages_follow_ids_without_gaps_or_repeats(db: Database) -> None:
    people = audience(db)
    for n in range(PAGE_SIZE * 2 + 7):
        add_subscriber(db, "weekly", f"many{n:03}@example.ge", None, True, "test")
    matching = AudienceFilter(people.weekly, SubscriptionStatus.active, "many")
    seen: list[int] = []
    after, sizes = 0, []
    while True:
        page = search(db, matching, after)
        sizes.append(len(page.rows))
        seen += [row.id for row in page.rows]
        if page.next_after is None:
            break
        assert page.next_after == page.rows[-1].id
        after = page.next_after
    assert sizes == [PAGE_SIZE, PAGE_SIZE, 7]
    assert seen == sorted(seen) and len(set(seen)) == PAGE_SIZE * 2 + 7
    assert count(db, matching) == PAGE_SIZE * 2 + 7


def test_the_filter_named_by_slug(db: Database) -> None:
    people = audience(db)
    named = audience_filter(db, "daily", SubscriptionStatus.pending, "b" * 300)
    assert (named.newsletter_id, named.status, named.query) == (
        people.daily,
        SubscriptionStatus.pending,
        "b" * 200,
    )
    assert audience_filter(db, None, None, "").newsletter_id is None
    assert audience_filter(db, "", None, "").newsletter_id is None
    with pytest.raises(NotFound):
        audience_filter(db, "no-such-letter", None, "")
