"""The mass-refusal guard on real rows: an edition whose first results are mostly the same
5xx is paused and its refusals held for later; once past its first results (or resumed by an
editor) its refusals are the readers' own: 5.1.x suppressed, soft ones a point on the bounce
score, policy ones nothing."""

from datetime import UTC, datetime

from sqlalchemy import select, update

from tests.deliver.ledgerrows import Readers, sending, states
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    HistoryKind,
    SubscriberEvent,
    Suppression,
)
from tidings.deliver import refusals
from tidings.deliver.policy import WATCHED_RESULTS
from tidings.feedback.effects import BounceScore
from tidings.feedback.history import ARRIVAL

SCORE = BounceScore(threshold=5, window_days=14)


def _results(db: Database, made: Readers, refused: int, reply: str) -> None:
    """The first ``refused`` readers were refused with ``reply``, the others were sent."""
    ids = list(made.ids.values())
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id.in_(ids[:refused]))
            .values(state=DeliveryState.failed, last_reply_code=int(reply[:3]), last_reply=reply)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id.in_(ids[refused:]))
            .values(state=DeliveryState.sent)
        )
        session.commit()


def _judge(db: Database, made: Readers, in_batch: int) -> refusals.FirstResults:
    with db.session() as session:
        verdict = refusals.judge_first_results(
            session, {made.edition_id: in_batch}, SCORE, datetime.now(UTC)
        )
        session.commit()
    return verdict


def _suppressed(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(Suppression.email)))


def test_a_mass_refusal_pauses_the_edition_and_holds_its_refusals(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=30)
    _results(db, made, refused=25, reply="550 5.1.1 no such user")
    verdict = _judge(db, made, in_batch=30)
    assert list(verdict.paused) == [made.edition_id] and verdict.judged == set()
    assert "25 of the first 30 recipients" in verdict.paused[made.edition_id]
    with db.session() as session:
        edition = session.get_one(Edition, made.edition_id)
        held = session.scalars(
            select(Delivery.last_reply).where(Delivery.state == DeliveryState.queued)
        ).all()
    assert edition.status == EditionStatus.paused
    assert edition.note is not None and "Fix the relay, then resume." in edition.note
    assert len(held) == 25
    assert all((r or "").startswith(refusals.HELD_PREFIX + "550 5.1.1") for r in held)
    assert _suppressed(db) == []  # no address is blamed for the relay


def test_a_few_dead_addresses_are_not_a_mass_refusal(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=30)
    _results(db, made, refused=3, reply="550 5.1.1 no such user")
    assert _judge(db, made, in_batch=30) == refusals.FirstResults()
    assert set(states(db, made.edition_id).values()) == {DeliveryState.failed, DeliveryState.sent}
    assert _suppressed(db) == []  # still watched: suppressions wait


def test_once_an_editor_resumed_the_refusals_are_the_readers_own(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=30)
    _results(db, made, refused=25, reply="550 5.1.1 no such user")
    with db.session() as session:
        session.execute(
            update(Edition)
            .where(Edition.id == made.edition_id)
            .values(refusal_watch_ended_at=datetime.now(UTC))
        )
        session.commit()
    verdict = _judge(db, made, in_batch=30)
    assert (verdict.paused, verdict.judged) == ({}, {made.edition_id})
    assert _suppressed(db) == sorted(list(made.ids)[:25])


def test_past_its_first_results_an_edition_is_judged_fine(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=WATCHED_RESULTS + 5)
    _results(db, made, refused=2, reply="550 5.1.1 no such user")
    verdict = _judge(db, made, in_batch=5)
    assert verdict.judged == {made.edition_id}
    assert _suppressed(db) == sorted(list(made.ids)[:2])


def test_only_5_1_x_refusals_are_suppressed_and_only_once(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=4)
    _results(db, made, refused=2, reply="550 5.1.1 no such user")
    blocked = list(made.ids.values())[2]
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == blocked)
            .values(state=DeliveryState.failed, last_reply_code=554, last_reply="554 5.7.1 no")
        )
        session.commit()
    for _ in range(2):
        with db.session() as session:
            refusals.settle_refused(session, made.edition_id, SCORE, datetime.now(UTC))
            session.commit()
    assert _suppressed(db) == sorted(list(made.ids)[:2])


def _points(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(BouncePoint.email)))


def test_a_mass_soft_refusal_scores_nobody(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=30)
    _results(db, made, refused=25, reply="552 5.2.2 mailbox full")
    assert list(_judge(db, made, in_batch=30).paused) == [made.edition_id]
    assert (_suppressed(db), _points(db)) == ([], [])


def test_settled_soft_refusals_score_one_point_each_and_policy_ones_none(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=6)
    readers = list(made.ids)
    replies = {
        readers[0]: "552 5.2.2 mailbox full",
        readers[1]: "550 Requested action not taken: user unknown",  # hard, without a status
        readers[2]: "554 5.7.1 rejected: listed at zen.spamhaus.org",
        readers[3]: "554 client host blocked using zen.spamhaus.org",  # policy, no status
        readers[4]: "550 refused",  # unclear: soft
    }
    with db.session() as session:
        for email, reply in replies.items():
            session.execute(
                update(Delivery)
                .where(Delivery.subscriber_id == made.ids[email])
                .values(
                    state=DeliveryState.failed,
                    last_reply_code=int(reply[:3]),
                    last_reply=reply,
                    last_attempt_at=datetime.now(UTC),
                )
            )
        session.commit()
    for _ in range(2):  # the judging and the edition's end both settle: once is what counts
        with db.session() as session:
            refusals.settle_refused(session, made.edition_id, SCORE, datetime.now(UTC))
            session.commit()
    assert _suppressed(db) == [readers[1]]
    assert _points(db) == sorted([readers[0], readers[4]])
    with db.session() as session:
        kinds = session.scalars(
            select(SubscriberEvent.kind).where(SubscriberEvent.kind.not_in(ARRIVAL))
        ).all()
    assert sorted(kinds) == sorted(
        [HistoryKind.suppressed, HistoryKind.bounce_point, HistoryKind.bounce_point]
    )
