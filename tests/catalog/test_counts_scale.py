"""The counts of the dashboard and the newsletter page, beyond the basics of test_counts.py:
subscriptions per newsletter and status give the numbers of the per-row rule
(:func:`reader_status`) for suppressed, erased, unsubscribed and pending readers of several
newsletters; the coming sends count exactly whom the fan-out queues, zone by zone; and on
PostgreSQL, with enough readers for a plan to show, neither looks the readers up one by one.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.builders import newsletter
from tests.plans import Statement, nodes, statements_of
from tidings.catalog.counts import ReaderStatus, reader_status, subscription_counts
from tidings.compose.zones import ReaderZones
from tidings.db.engine import Database
from tidings.db.models import (
    Cadence,
    Edition,
    EditionKind,
    EditionStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.deliver.ledger.fanout import fan_out, recipient_count, recipient_counts

ACTIVE = SubscriptionStatus.active
PENDING = SubscriptionStatus.pending
LEFT = SubscriptionStatus.unsubscribed
HOME = "Asia/Tbilisi"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

#: Each reader's subscriptions (newsletter slug, status) and suppression reason, if any.
READERS: dict[str, tuple[list[tuple[str, SubscriptionStatus]], SuppressionReason | None]] = {
    "a@example.ge": ([("daily", ACTIVE), ("weekly", ACTIVE)], None),
    "b@example.ge": ([("daily", ACTIVE)], SuppressionReason.hard_bounce),
    "c@example.ge": ([("daily", LEFT), ("weekly", PENDING)], SuppressionReason.complaint),
    "d@example.ge": ([("daily", PENDING)], SuppressionReason.soft_bounce),
    "e@example.ge": ([("weekly", ACTIVE)], SuppressionReason.manual),
    "f@example.ge": ([("monthly", ACTIVE)], SuppressionReason.hard_bounce),
    "g@example.ge": ([("daily", ACTIVE)], None),
    "h@example.ge": ([("weekly", LEFT)], None),
    "i@example.ge": ([], SuppressionReason.manual),  # suppressed, subscribed to nothing
}
#: Erased readers: their suppression stays, their subscriber and subscriptions are gone.
ERASED = "gone@example.ge"


def _audience(db: Database) -> dict[str, int]:
    ids = {slug: newsletter(db, slug) for slug in ("daily", "weekly", "monthly")}
    with db.session() as session:
        for email, (subscriptions, reason) in READERS.items():
            reader = Subscriber(email=email, attributes={})
            session.add(reader)
            session.flush()
            for slug, status in subscriptions:
                session.add(
                    Subscription(subscriber_id=reader.id, newsletter_id=ids[slug], status=status)
                )
            if reason is not None:
                session.add(Suppression(email=email, reason=reason))
        session.add(Suppression(email=ERASED, reason=SuppressionReason.erasure))
        session.commit()
    return ids


def _row_by_row(session: Session) -> dict[tuple[int, str], int]:
    """The counts as the per-row rule gives them (the statement the dashboard used to send)."""
    status = reader_status().label("status")
    return {
        (newsletter_id, ReaderStatus(str(value))): total
        for newsletter_id, value, total in session.execute(
            select(Subscription.newsletter_id, status, func.count())
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .group_by(Subscription.newsletter_id, status)
        )
    }


def test_a_suppressed_reader_counts_as_bounced_or_suppressed_whatever_their_status(
    db: Database,
) -> None:
    ids = _audience(db)
    daily, weekly, monthly = ids["daily"], ids["weekly"], ids["monthly"]
    with db.session() as session:
        counts = subscription_counts(session)
        assert counts == _row_by_row(session)
    assert counts == {
        (daily, ReaderStatus.active): 2,  # a, g
        (daily, ReaderStatus.bounced): 2,  # b (was active), d (was pending)
        (daily, ReaderStatus.suppressed): 1,  # c (had unsubscribed)
        (weekly, ReaderStatus.active): 1,  # a
        (weekly, ReaderStatus.suppressed): 2,  # c (was pending), e (was active)
        (weekly, ReaderStatus.unsubscribed): 1,  # h
        (monthly, ReaderStatus.bounced): 1,  # f: no (monthly, active) left at zero
    }
    assert all(isinstance(status, ReaderStatus) for _, status in counts)


#: Zone, sections chosen, cadence, status, suppressed: the readers of the coming-send test.
ZONED = [
    ("Europe/Berlin", None, Cadence.daily, ACTIVE, False),
    ("Europe/Berlin", ["culture"], Cadence.daily, ACTIVE, False),
    ("Europe/Berlin", ["sport"], Cadence.weekly, ACTIVE, False),
    ("Europe/Berlin", None, Cadence.daily, PENDING, False),
    ("Asia/Kolkata", ["sport"], Cadence.weekly, ACTIVE, False),
    ("Asia/Kolkata", ["culture", "sport"], Cadence.daily, ACTIVE, False),
    ("Asia/Kolkata", None, Cadence.daily, ACTIVE, True),
    (None, [], Cadence.daily, ACTIVE, False),
    (None, None, Cadence.weekly, LEFT, False),
    (None, None, Cadence.weekly, ACTIVE, False),
    ("Mars/Olympus_Mons", None, Cadence.daily, ACTIVE, False),
    ("Mars/Olympus_Mons", ["culture"], Cadence.weekly, ACTIVE, True),
]


def _zoned_readers(db: Database) -> tuple[int, ReaderZones]:
    daily = newsletter(db, "daily", timezone=HOME)
    other = newsletter(db, "other", timezone=HOME)
    with db.session() as session:
        for n, (zone, sections, cadence, status, suppressed) in enumerate(ZONED):
            email = f"zoned{n}@example.ge"
            reader = Subscriber(email=email, timezone=zone, attributes={})
            session.add(reader)
            session.flush()
            session.add(
                Subscription(
                    subscriber_id=reader.id,
                    newsletter_id=daily,
                    status=status,
                    cadence=cadence,
                    sections=sections,
                )
            )
            # Every reader also reads another newsletter, actively and for everything.
            session.add(Subscription(subscriber_id=reader.id, newsletter_id=other, status=ACTIVE))
            if suppressed:
                session.add(Suppression(email=email, reason=SuppressionReason.hard_bounce))
        session.commit()
    zones = ReaderZones(HOME, frozenset({"Europe/Berlin", "Asia/Kolkata"}), ("Mars/Olympus_Mons",))
    return daily, zones


def _queued(db: Database, newsletter_id: int, sections: tuple[str, ...], **rule: Any) -> int:
    """How many deliveries the fan-out queues (then rolled back)."""
    with db.session() as session:
        edition = Edition(
            newsletter_id=newsletter_id, kind=EditionKind.oneoff, status=EditionStatus.sending
        )
        session.add(edition)
        session.flush()
        queued = fan_out(session, edition.id, newsletter_id, "example.ge", NOW, sections, **rule)
        session.rollback()
    return queued


@pytest.mark.parametrize("sections", [(), ("culture",), ("culture", "politics")])
@pytest.mark.parametrize("cadence", [None, Cadence.daily, Cadence.weekly])
def test_the_coming_sends_count_whom_the_fan_out_queues_zone_by_zone(
    db: Database, sections: tuple[str, ...], cadence: Cadence | None
) -> None:
    daily, zones = _zoned_readers(db)
    rules = [None, *(zones.rule(zone) for zone in zones.served())]
    with db.session() as session:
        counted = recipient_counts(session, daily, sections, cadence, rules)
        one_by_one = [recipient_count(session, daily, sections, cadence, rule) for rule in rules]
    queued = [_queued(db, daily, sections, cadence=cadence, zone_rule=rule) for rule in rules]
    assert counted == one_by_one == queued
    assert counted[0] == sum(counted[1:])  # each reader in exactly one zone
    assert counted[0] > 0


# PostgreSQL: the plans, on 20,000 readers.

READER_COUNT = 20000


@pytest.fixture
def many_readers(db: Database) -> Iterator[tuple[int, int]]:
    """20,000 readers of one newsletter (a tenth chose culture, some left, some pending),
    half of them of a second, 40 of them suppressed; analysed."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's plans")
    first, second = newsletter(db, "daily"), newsletter(db, "weekly")
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscribers (email, attributes, created_at, updated_at)"
                " SELECT 'r' || g || '@example.ge', '{}', now(), now()"
                " FROM generate_series(1, :n) AS g"
            ),
            {"n": READER_COUNT},
        )
        connection.execute(
            text(
                "INSERT INTO subscriptions"
                " (subscriber_id, newsletter_id, status, cadence, sections, created_at,"
                " updated_at)"
                " SELECT id, :first, CASE WHEN id % 50 = 0 THEN 'unsubscribed'"
                " WHEN id % 97 = 0 THEN 'pending' ELSE 'active' END, 'daily',"
                " CASE WHEN id % 10 = 0 THEN '[\"culture\"]'::jsonb END, now(), now()"
                " FROM subscribers"
            ),
            {"first": first},
        )
        connection.execute(
            text(
                "INSERT INTO subscriptions"
                " (subscriber_id, newsletter_id, status, cadence, created_at, updated_at)"
                " SELECT id, :second, 'active', 'daily', now(), now() FROM subscribers"
                " WHERE id % 2 = 1"
            ),
            {"second": second},
        )
        connection.execute(
            text(
                "INSERT INTO suppressions (email, reason, created_at)"
                " SELECT 'r' || (g * 487) || '@example.ge',"
                " CASE WHEN g % 2 = 0 THEN 'hard_bounce' ELSE 'complaint' END, now()"
                " FROM generate_series(1, 40) AS g"
            )
        )
        connection.execute(text("ANALYZE subscribers, subscriptions, suppressions"))
    yield first, second


def _analysed(
    db: Database, run: Callable[[], object], needle: str, *setup: str
) -> list[dict[str, Any]]:
    """The analysed plans of the statements ``run()`` sends that contain ``needle``, each
    replayed after the statements sent before it (a SET LOCAL among them holds), in one
    transaction that begins with the ``setup`` statements."""
    sent: list[Statement] = statements_of(db, run)
    plans = []
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor:
                for statement in setup:
                    cursor.execute(statement)
                for statement, parameters in sent:
                    if needle in statement:
                        cursor.execute(
                            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters
                        )
                        row = cursor.fetchone()
                        assert row is not None
                        plans.append(row[0][0]["Plan"])
                    else:
                        cursor.execute(statement, parameters)
        finally:
            driver.rollback()
    assert plans, sent
    return plans


JOINS = {"Hash Join", "Nested Loop", "Merge Join"}


def test_the_counts_move_only_the_suppressed_readers(
    db: Database, many_readers: tuple[int, int]
) -> None:
    def run() -> None:
        with db.session() as session:
            subscription_counts(session)

    with db.session() as session:
        assert subscription_counts(session) == _row_by_row(session)
    for plan in _analysed(db, run, "count("):
        for node in nodes(plan):
            # The old statement joined every subscription to its subscriber (30,000 rows)
            # and asked the suppression list per row; now only the suppressed readers'
            # (40 readers, at most two subscriptions each) are joined.
            assert "Subplan Name" not in node, plan
            if node["Node Type"] in JOINS:
                assert node["Actual Rows"] * node["Actual Loops"] <= 80, plan
