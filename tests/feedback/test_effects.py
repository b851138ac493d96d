"""What a bounce, a complaint or an unsubscribe does to a reader, on SQLite and PostgreSQL
with real rows (tests/audience/people.py): suppressions, the bounce score and its window,
unsubscribes, the delivery's feedback, and the history written for each."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.audience.people import Audience, audience, deliveries
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryFeedback,
    HistoryKind,
    InboundMeaning,
    InboundMessage,
    SubscriberEvent,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.feedback.effects import (
    BounceScore,
    Evidence,
    complaint,
    hard_bounce,
    mark_delivery,
    soft_bounce,
    unsubscribe,
)

NOW = datetime(2025, 6, 27, 9, 30, tzinfo=UTC)
SCORE = BounceScore(threshold=5, window_days=14)
FULL = Evidence("552 5.2.2 mailbox full", inbound_id=None)


def _suppression(db: Database, email: str) -> tuple[SuppressionReason, str | None] | None:
    with db.session() as session:
        row = session.execute(
            select(Suppression.reason, Suppression.detail).where(Suppression.email == email)
        ).first()
        return (row[0], row[1]) if row else None


def _history(db: Database, subscriber_id: int) -> list[tuple[HistoryKind, int | None, str]]:
    with db.session() as session:
        rows = session.execute(
            select(SubscriberEvent.kind, SubscriberEvent.newsletter_id, SubscriberEvent.detail)
            .where(
                SubscriberEvent.subscriber_id == subscriber_id,
                # How the reader came (added by the fixture) is not what came back.
                SubscriberEvent.kind.not_in([HistoryKind.added, HistoryKind.confirmed]),
            )
            .order_by(SubscriberEvent.id)
        )
        return [(kind, newsletter, detail or "") for kind, newsletter, detail in rows]


def _statuses(db: Database, subscriber_id: int) -> dict[int, SubscriptionStatus]:
    with db.session() as session:
        rows = session.execute(
            select(Subscription.newsletter_id, Subscription.status).where(
                Subscription.subscriber_id == subscriber_id
            )
        )
        return {newsletter: status for newsletter, status in rows}


def _soft(db: Database, email: str, now: datetime, detail: str = FULL.detail) -> str:
    with db.session() as session:
        said = soft_bounce(session, email, Evidence(detail), SCORE, now)
        session.commit()
        return said


def test_a_hard_bounce_suppresses_at_once_with_its_evidence(db: Database) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    with db.session() as session:
        said = hard_bounce(session, "Ana@Example.GE", Evidence("550 5.1.1 user unknown"), NOW)
        again = hard_bounce(session, "ana@example.ge", Evidence("550 5.1.1 again"), NOW)
        gone = hard_bounce(session, "not an address", Evidence("x"), NOW)
        session.commit()
    assert said == "suppressed ana@example.ge (hard bounce)"
    assert again == "nothing: ana@example.ge is already suppressed (hard_bounce)"
    assert gone.startswith("nothing:")
    assert _suppression(db, "ana@example.ge") == (
        SuppressionReason.hard_bounce,
        "550 5.1.1 user unknown",
    )
    assert _history(db, ana) == [
        (HistoryKind.suppressed, None, "hard_bounce: 550 5.1.1 user unknown")
    ]


def test_a_soft_bounce_scores_one_point_a_day_and_the_fifth_day_suppresses(
    db: Database,
) -> None:
    people = audience(db)
    dato = people.ids["dato@example.ge"]
    said = [_soft(db, "dato@example.ge", NOW + timedelta(hours=h)) for h in (0, 1, 5)]
    assert said == [
        "bounce point 1 of 5 for dato@example.ge",
        "nothing: dato@example.ge has a bounce point for 2025-06-27 already (1 of 5)",
        "nothing: dato@example.ge has a bounce point for 2025-06-27 already (1 of 5)",
    ]
    for day in (1, 2, 3):
        assert _soft(db, "dato@example.ge", NOW + timedelta(days=day)).startswith(
            f"bounce point {day + 1} of 5"
        )
    assert _suppression(db, "dato@example.ge") is None
    fifth = _soft(db, "dato@example.ge", NOW + timedelta(days=4), "452 4.2.2 over quota")
    assert fifth == "bounce point 5 of 5 for dato@example.ge: suppressed (soft bounces)"
    reason, detail = _suppression(db, "dato@example.ge") or (None, None)
    assert reason == SuppressionReason.soft_bounce
    assert detail == "5 soft bounces within 14 days; the last: 452 4.2.2 over quota"
    kinds = [kind for kind, _, _ in _history(db, dato)]
    assert kinds == [HistoryKind.bounce_point] * 5 + [HistoryKind.suppressed]
    later = _soft(db, "dato@example.ge", NOW + timedelta(days=5))
    assert later == "nothing: dato@example.ge is already suppressed (soft_bounce)"


def test_points_older_than_the_window_are_forgotten(db: Database) -> None:
    audience(db)
    for day in (0, 1, 2, 3):  # four points, then a quiet fortnight
        _soft(db, "dato@example.ge", NOW + timedelta(days=day))
    # Day 14: the point of day 0 is 14 days old and no longer counts (days 1-14 do).
    assert _soft(db, "dato@example.ge", NOW + timedelta(days=14)) == (
        "bounce point 4 of 5 for dato@example.ge"
    )
    assert _suppression(db, "dato@example.ge") is None
    with db.session() as session:
        days = session.scalars(select(BouncePoint.day).order_by(BouncePoint.day)).all()
    assert [(d - NOW.date()).days for d in days] == [1, 2, 3, 14]
    # Day 15: the point of day 1 goes too, so the window slides and nobody is suppressed.
    assert _soft(db, "dato@example.ge", NOW + timedelta(days=15)) == (
        "bounce point 4 of 5 for dato@example.ge"
    )
    assert _suppression(db, "dato@example.ge") is None


def test_a_complaint_unsubscribes_from_every_newsletter_and_suppresses(db: Database) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    with db.session() as session:
        arf = InboundMessage(channel="pipe", meaning=InboundMeaning.complaint)
        session.add(arf)
        session.flush()
        said = complaint(
            session, "ana@example.ge", Evidence("ARF feedback-type: abuse", arf.id), NOW
        )
        again = complaint(session, "ana@example.ge", Evidence("ARF again"), NOW)
        session.commit()
    assert (
        said
        == "unsubscribed ana@example.ge from daily, weekly; suppressed ana@example.ge (complaint)"
    )
    assert again == "nothing: ana@example.ge is already suppressed (complaint)"
    assert set(_statuses(db, ana).values()) == {SubscriptionStatus.unsubscribed}
    assert _suppression(db, "ana@example.ge") == (
        SuppressionReason.complaint,
        "ARF feedback-type: abuse",
    )
    history = _history(db, ana)
    assert sorted((k, n) for k, n, _ in history) == sorted(
        [
            (HistoryKind.unsubscribed, people.daily),
            (HistoryKind.unsubscribed, people.weekly),
            (HistoryKind.suppressed, None),
        ]
    )
    assert all("ARF feedback-type: abuse" in detail for _, _, detail in history)
    with db.session() as session:
        assert set(
            session.scalars(
                select(SubscriberEvent.inbound_id).where(
                    SubscriberEvent.subscriber_id == ana,
                    SubscriberEvent.kind.not_in([HistoryKind.added, HistoryKind.confirmed]),
                )
            )
        ) == {arf.id}
    # The others are untouched.
    assert _statuses(db, people.ids["dato@example.ge"]) == {
        people.weekly: SubscriptionStatus.active
    }


def test_an_unsubscribe_ends_that_subscription_only(db: Database) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    daily = _subscription(db, people, "ana@example.ge", people.daily)
    evidence = Evidence("mailto unsubscribe from ana@example.ge")
    with db.session() as session:
        said = unsubscribe(session, daily, evidence, NOW)
        again = unsubscribe(session, daily, evidence, NOW)
        unknown = unsubscribe(session, 10**6, evidence, NOW)
        session.commit()
    assert said == "unsubscribed ana@example.ge from daily"
    assert again == "nothing: ana@example.ge was unsubscribed from daily already"
    assert unknown == "nothing: subscription 1000000 no longer exists"
    assert _statuses(db, ana) == {
        people.daily: SubscriptionStatus.unsubscribed,
        people.weekly: SubscriptionStatus.active,
    }
    with db.session() as session:
        ended = session.get_one(Subscription, daily)
        assert ended.unsubscribed_at == NOW
    assert _history(db, ana) == [(HistoryKind.unsubscribed, people.daily, evidence.detail)]
    assert _suppression(db, "ana@example.ge") is None


def test_a_delivery_is_marked_and_a_complaint_outweighs_a_bounce(db: Database) -> None:
    people = audience(db)
    deliveries(db, people.daily, people.ids["ana@example.ge"], ["one", "two"])
    with db.session() as session:
        first, second = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
        mark_delivery(session, first, DeliveryFeedback.bounced)
        mark_delivery(session, second, DeliveryFeedback.complained)
        mark_delivery(session, second, DeliveryFeedback.bounced)  # does not downgrade
        session.commit()
        marks = session.scalars(select(Delivery.feedback).order_by(Delivery.id)).all()
    assert marks == [DeliveryFeedback.bounced, DeliveryFeedback.complained]


def _subscription(db: Database, people: Audience, email: str, newsletter_id: int) -> int:
    with db.session() as session:
        found = session.scalar(
            select(Subscription.id).where(
                Subscription.subscriber_id == people.ids[email],
                Subscription.newsletter_id == newsletter_id,
            )
        )
    assert found is not None
    return found
