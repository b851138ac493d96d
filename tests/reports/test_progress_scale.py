"""Polling an edition's progress does not read its deliveries at every call: a big live
edition's counts are kept a little while (the edition page polls every second, per viewer),
a finished edition's last send is asked for once per process, and small editions are
counted afresh at every call. On SQLite and PostgreSQL; on PostgreSQL the pages read by
several polls are bounded by one read of the edition."""

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import insert, text, update

from tests.plans import blocks, plan_of, statements_of
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionKind, EditionStatus
from tidings.reports.progress import edition_progress, list_editions
from tidings.reports.tallies import KEPT_FROM

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
#: A live edition big enough for its counts to be kept.
BIG = KEPT_FROM + 2_000
#: What the counts per state are asked with (and the finished editions' last sends).
COUNTS = "count(*)"
LAST_SENT = "max(deliveries.sent_at)"
_SLUGS = count()


def _edition(
    db: Database, status: EditionStatus, final_counts: dict[str, int] | None = None
) -> int:
    spec = NewsletterSpec(slug=f"n{next(_SLUGS)}", name="N", sender="N <n@example.ge>")
    newsletter_id = create_newsletter(db, spec).id
    with db.session() as session:
        edition = Edition(
            newsletter_id=newsletter_id,
            kind=EditionKind.oneoff,
            status=status,
            subject="S",
            started_at=START,
            final_counts=final_counts,
        )
        session.add(edition)
        session.commit()
        return edition.id


def _deliveries(db: Database, edition_id: int, *states: tuple[DeliveryState, int]) -> None:
    """``n`` deliveries in each state, to erased readers (no subscriber, as erasing leaves
    them); those sent went one second apart from :data:`START` + 1 s."""
    rows: list[dict[str, Any]] = []
    for state, n in states:
        for _ in range(n):
            sent = state == DeliveryState.sent
            at = START + timedelta(seconds=len(rows) + 1) if sent else None
            rows.append(
                {
                    "edition_id": edition_id,
                    "subscriber_id": None,
                    "state": state,
                    "attempts": 1,
                    "message_id": f"<{edition_id}.{len(rows)}@example.ge>",
                    "sent_at": at,
                }
            )
    with db.engine.begin() as connection:
        connection.execute(insert(Delivery), rows)


def _counted(db: Database, calls: int, *edition_ids: int) -> list[str]:
    """The statements that counted deliveries per state over ``calls`` polls of each."""
    sent = statements_of(
        db, lambda: [edition_progress(db, e) for _ in range(calls) for e in edition_ids]
    )
    return [s for s, _ in sent if COUNTS in s and "deliveries.state" in s]


def test_a_big_live_editions_counts_are_kept_while_viewers_poll(db: Database) -> None:
    edition_id = _edition(db, EditionStatus.sending)
    _deliveries(db, edition_id, (DeliveryState.sent, BIG - 10), (DeliveryState.queued, 10))
    assert len(_counted(db, 5, edition_id)) == 1
    progress = edition_progress(db, edition_id)
    assert progress.counts == {DeliveryState.sent: BIG - 10, DeliveryState.queued: 10}
    # Paused (a move): counted afresh at once, and the rate runs to the last message sent,
    # asked for in the same read as the counts.
    with db.session() as session:
        session.execute(
            update(Edition).where(Edition.id == edition_id).values(status=EditionStatus.paused)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id, Delivery.state == DeliveryState.queued)
            .values(state=DeliveryState.failed)
        )
        session.commit()
    counted = statements_of(db, lambda: edition_progress(db, edition_id))
    assert [s for s, _ in counted if LAST_SENT in s and "deliveries.state" not in s] == []
    paused = edition_progress(db, edition_id)
    assert paused.counts == {DeliveryState.sent: BIG - 10, DeliveryState.failed: 10}
    assert paused.per_second == pytest.approx((BIG - 10) / (BIG - 10))


def test_a_small_edition_is_counted_at_every_call(db: Database) -> None:
    edition_id = _edition(db, EditionStatus.sending)
    _deliveries(db, edition_id, (DeliveryState.sent, 2), (DeliveryState.queued, 1))
    assert edition_progress(db, edition_id).counts == {
        DeliveryState.sent: 2,
        DeliveryState.queued: 1,
    }
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id, Delivery.state == DeliveryState.queued)
            .values(state=DeliveryState.sent, sent_at=START + timedelta(seconds=9))
        )
        session.commit()
    assert edition_progress(db, edition_id).counts == {DeliveryState.sent: 3}
    assert len(_counted(db, 3, edition_id)) == 3


def test_a_finished_editions_last_send_is_asked_for_once(db: Database) -> None:
    sent = _edition(db, EditionStatus.sent, {"sent": 4, "failed": 1})
    _deliveries(db, sent, (DeliveryState.sent, 4), (DeliveryState.failed, 1))
    cancelled = _edition(db, EditionStatus.cancelled, {"cancelled": 2})
    _deliveries(db, cancelled, (DeliveryState.cancelled, 2))
    first = statements_of(db, lambda: list_editions(db, None))
    assert len([s for s, _ in first if LAST_SENT in s]) == 1
    again: list[Any] = []
    second = statements_of(db, lambda: again.extend(list_editions(db, None)))
    assert [s for s, _ in second if LAST_SENT in s] == []
    rates = {p.edition_id: p.per_second for p in again}
    # Four sent from START + 1 s to START + 4 s: four over four seconds; none cancelled.
    assert rates == {sent: pytest.approx(1.0), cancelled: 0.0}


def test_polling_a_big_edition_reads_its_deliveries_once(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's buffer counts")
    finished = _edition(db, EditionStatus.sent, {"sent": 100_000})
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deliveries (edition_id, state, attempts, next_attempt_at,"
                " message_id, sent_at, created_at) SELECT :e, 'sent', 1, now(), 'm' || g,"
                " now(), now() FROM generate_series(1, 100000) AS g"
            ),
            {"e": finished},
        )
    live = _edition(db, EditionStatus.sending)
    _deliveries(db, live, (DeliveryState.sent, BIG - 100), (DeliveryState.queued, 100))
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE deliveries"))
    polls = statements_of(db, lambda: [edition_progress(db, live) for _ in range(5)])
    on_deliveries = [sent for sent in polls if "FROM deliveries" in sent[0]]
    read = sum(blocks(plan_of(db, sent, analyze=True)) for sent in on_deliveries)
    counts = [sent for sent in on_deliveries if COUNTS in sent[0] and "state" in sent[0]]
    one_read = blocks(plan_of(db, counts[0], analyze=True))
    # Counting reads every row of the edition (over a hundred pages here); five polls that
    # each counted and asked for the last send read them ten times.
    assert one_read > 100 and read < 2 * one_read, (read, one_read)
