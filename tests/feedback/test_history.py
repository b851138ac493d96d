"""The subscriber's history and an admin's undo of each kind of change, on SQLite and
PostgreSQL with real rows: a suppression removed, a subscription back, a day's point gone;
an event undone twice, or unknown, refused."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.audience.people import audience
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    HistoryKind,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.errors import Conflict, NotFound
from tidings.feedback.effects import (
    BounceScore,
    Evidence,
    complaint,
    hard_bounce,
    soft_bounce,
    suppress,
    unsubscribe,
)
from tidings.feedback.history import HistoryRow, history_of, undo

NOW = datetime(2025, 6, 27, 9, 30, tzinfo=UTC)
SCORE = BounceScore(threshold=2, window_days=14)


def _event(db: Database, subscriber_id: int, kind: HistoryKind) -> HistoryRow:
    return next(row for row in history_of(db, subscriber_id) if row.kind == kind)


def _hard_bounced(db: Database) -> tuple[int, HistoryRow]:
    """Ana's address suppressed by a 5.1.1: her id and the ``suppressed`` event."""
    ana = audience(db).ids["ana@example.ge"]
    with db.session() as session:
        hard_bounce(session, "ana@example.ge", Evidence("550 5.1.1 gone"), NOW)
        session.commit()
    return ana, _event(db, ana, HistoryKind.suppressed)


def _reason(db: Database, email: str) -> SuppressionReason | None:
    with db.session() as session:
        reason: SuppressionReason | None = session.scalar(
            select(Suppression.reason).where(Suppression.email == email)
        )
        return reason


def test_history_lists_events_newest_first_with_their_evidence(db: Database) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    with db.session() as session:
        soft_bounce(session, "ana@example.ge", Evidence("452 4.2.2 full"), SCORE, NOW)
        hard_bounce(session, "ana@example.ge", Evidence("550 5.1.1 gone"), NOW)
        session.commit()
    # Below what came back, the history starts with how the reader was added (its source).
    rows = history_of(db, ana)
    assert [(r.kind, r.detail, r.undoable) for r in rows] == [
        (HistoryKind.suppressed, "hard_bounce: 550 5.1.1 gone", True),
        (HistoryKind.bounce_point, "452 4.2.2 full", True),
        *[(HistoryKind.added, "added as active", False)] * (len(rows) - 2),
    ]
    assert len(rows) > 2 and {r.source for r in rows[2:]} <= {"api", "cli", "console", "test"}
    assert rows[0].created_at == NOW and rows[0].undone_at is None
    assert {r.kind for r in history_of(db, people.ids["dato@example.ge"])} <= {
        HistoryKind.added,
        HistoryKind.confirmed,
    }
    with pytest.raises(NotFound):
        history_of(db, 10**6)


def test_undoing_a_suppression_removes_it_once(db: Database) -> None:
    ana, event = _hard_bounced(db)
    said = undo(db, event.id, "admin@example.ge")
    assert said == "removed the suppression of ana@example.ge (hard_bounce)"
    assert _reason(db, "ana@example.ge") is None
    rows = history_of(db, ana)
    assert rows[0].kind == HistoryKind.unsuppressed and not rows[0].undoable
    assert f"undo of event {event.id} by admin@example.ge" == rows[0].detail
    undone = next(r for r in rows if r.id == event.id)
    assert undone.undone_by == "admin@example.ge" and undone.undone_at is not None
    assert not undone.undoable
    with pytest.raises(Conflict):
        undo(db, event.id, "admin@example.ge")
    with pytest.raises(Conflict):  # an undo is not undone
        undo(db, rows[0].id, "admin@example.ge")
    with pytest.raises(NotFound):
        undo(db, 10**6, "admin@example.ge")


def test_undo_keeps_a_suppression_made_for_another_reason(db: Database) -> None:
    ana, event = _hard_bounced(db)
    with db.session() as session:  # removed by hand, then a complaint suppresses it again
        session.execute(Suppression.__table__.delete())
        suppress(session, "ana@example.ge", SuppressionReason.complaint, Evidence("ARF"), NOW)
        session.commit()
    with pytest.raises(Conflict, match="another reason \\(complaint\\)"):
        undo(db, event.id, "admin@example.ge")
    assert _reason(db, "ana@example.ge") == SuppressionReason.complaint
    assert next(r for r in history_of(db, ana) if r.id == event.id).undoable


def test_undoing_a_soft_bounce_suppression_forgets_the_points(db: Database) -> None:
    people = audience(db)
    dato = people.ids["dato@example.ge"]
    with db.session() as session:
        for day in (0, 1):
            moment = NOW + timedelta(days=day)
            soft_bounce(session, "dato@example.ge", Evidence("452 4.2.2"), SCORE, moment)
        session.commit()
    assert _reason(db, "dato@example.ge") == SuppressionReason.soft_bounce
    said = undo(db, _event(db, dato, HistoryKind.suppressed).id, "admin")
    assert said == "removed the suppression of dato@example.ge (soft_bounce) and its bounce points"
    with db.session() as session:
        assert session.scalars(select(BouncePoint)).all() == []
        # The next soft bounce is a first point again, not a suppression.
        later = NOW + timedelta(days=2)
        assert soft_bounce(session, "dato@example.ge", Evidence("452"), SCORE, later) == (
            "bounce point 1 of 2 for dato@example.ge"
        )


def test_undoing_an_unsubscribe_brings_back_that_subscription(db: Database) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    with db.session() as session:
        complaint(session, "ana@example.ge", Evidence("ARF abuse"), NOW)
        session.commit()
    daily = next(
        r
        for r in history_of(db, ana)
        if r.kind == HistoryKind.unsubscribed and r.newsletter_id == people.daily
    )
    assert daily.newsletter_slug == "daily"
    said = undo(db, daily.id, "admin")
    # A complaint is the reader's own withdrawal of consent (feedback.history.consent_survives,
    # the rule the console's Resubscribe follows too): the undo asks them to confirm again.
    assert said == (
        "subscribed ana@example.ge to daily again (pending); the address is still suppressed "
        "(complaint), so nothing is sent to it"
    )
    with db.session() as session:
        statuses = dict(
            (n, (s, u))
            for n, s, u in session.execute(
                select(
                    Subscription.newsletter_id,
                    Subscription.status,
                    Subscription.unsubscribed_at,
                ).where(Subscription.subscriber_id == ana)
            )
        )
    assert statuses == {
        people.daily: (SubscriptionStatus.pending, None),
        people.weekly: (SubscriptionStatus.unsubscribed, NOW),
    }
    assert history_of(db, ana)[0].kind == HistoryKind.resubscribed


def test_undoing_a_pending_readers_unsubscribe_leaves_it_pending(db: Database) -> None:
    people = audience(db)
    eka = people.ids["eka@example.ge"]  # pending, never confirmed
    with db.session() as session:
        subscription = session.scalar(
            select(Subscription.id).where(Subscription.subscriber_id == eka)
        )
        assert subscription is not None
        unsubscribe(session, subscription, Evidence("mailto"), NOW)
        session.commit()
    said = undo(db, _event(db, eka, HistoryKind.unsubscribed).id, "admin")
    assert said == "subscribed eka@example.ge to weekly again (pending)"


def test_undoing_a_bounce_point_removes_that_days_point(db: Database) -> None:
    people = audience(db)
    dato = people.ids["dato@example.ge"]
    score = BounceScore(threshold=5, window_days=14)
    with db.session() as session:
        soft_bounce(session, "dato@example.ge", Evidence("452 4.2.2"), score, NOW)
        tomorrow = NOW + timedelta(days=1)
        soft_bounce(session, "dato@example.ge", Evidence("452 4.2.2"), score, tomorrow)
        session.commit()
    first = [r for r in history_of(db, dato) if r.kind == HistoryKind.bounce_point][-1]
    assert undo(db, first.id, "admin") == (
        "removed the bounce point of 2025-06-27 for dato@example.ge"
    )
    with db.session() as session:
        days = session.scalars(select(BouncePoint.day)).all()
    assert days == [(NOW + timedelta(days=1)).date()]
