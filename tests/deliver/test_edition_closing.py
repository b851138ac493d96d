"""An edition is sent the moment its last delivery is final: the result writer closes it in
the same transaction, a pause or cancel that comes when nothing is left open is refused
("already been sent"), and a pause racing with the last result never leaves it paused."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.deliver.ledgerrows import sending
from tidings.compose import lifecycle
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver import ledger
from tidings.errors import InvalidInput

LEASE = timedelta(seconds=30)


def _claim(db: Database, limit: int, now: datetime) -> list[ledger.Claim]:
    with db.session() as session:
        claims = ledger.claim_due(session, "w:1", limit, LEASE, now)
        session.commit()
    return claims


def _sent(claim: ledger.Claim, at: datetime) -> ledger.Outcome:
    return claim.outcome(DeliveryState.sent, 250, "2.0.0 queued", at)


def _edition(db: Database, edition_id: int) -> Edition:
    with db.session() as session:
        return session.get_one(Edition, edition_id)


def test_the_last_final_result_closes_the_edition_at_once(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=3)
    now = datetime.now(UTC)
    first, second, third = _claim(db, 3, now)
    with db.session() as session:
        recorded = ledger.record_outcomes(
            session,
            [
                _sent(first, now),
                second.outcome(DeliveryState.deferred, 451, "451 later", now, now + LEASE),
            ],
        )
        session.commit()
    assert recorded.closed == ()  # one deferred, one still being sent: not over
    assert _edition(db, made.edition_id).status == EditionStatus.sending
    with db.session() as session:
        recorded = ledger.record_outcomes(session, [_sent(third, now)])
        session.commit()
    assert recorded.closed == () and _edition(db, made.edition_id).status == EditionStatus.sending
    (retry,) = _claim(db, 1, now + LEASE)
    last = now + timedelta(seconds=40)
    with db.session() as session:
        recorded = ledger.record_outcomes(
            session, [retry.outcome(DeliveryState.failed, 550, "550 no such user", last)]
        )
        session.commit()
    assert recorded.closed == (made.edition_id,)
    edition = _edition(db, made.edition_id)
    assert (edition.status, edition.finished_at) == (EditionStatus.sent, last)


def _all_final_but_sending(db: Database, settings: Settings, status: EditionStatus) -> int:
    """An edition left by older code: every delivery sent, the edition still ``status``."""
    made = sending(db, settings, readers=2)
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == made.edition_id)
            .values(state=DeliveryState.sent, sent_at=datetime.now(UTC))
        )
        session.execute(update(Edition).where(Edition.id == made.edition_id).values(status=status))
        session.commit()
    return made.edition_id


@pytest.mark.parametrize("change", ["pause", "cancel"])
def test_pause_or_cancel_with_nothing_left_open_is_refused_and_closes_it(
    db: Database, settings: Settings, change: str
) -> None:
    edition_id = _all_final_but_sending(db, settings, EditionStatus.sending)
    with pytest.raises(InvalidInput) as refused:
        lifecycle.EDITION_CHANGES[change](db, settings, edition_id)
    assert str(refused.value) == f"Edition {edition_id} has already been sent."
    assert _edition(db, edition_id).status == EditionStatus.sent


def test_the_upkeep_closes_a_paused_edition_with_nothing_open(
    db: Database, settings: Settings
) -> None:
    edition_id = _all_final_but_sending(db, settings, EditionStatus.paused)
    with db.session() as session:
        assert ledger.finish_editions(session, datetime.now(UTC)) == 1
        session.commit()
    edition = _edition(db, edition_id)
    assert edition.status == EditionStatus.sent and edition.final_counts == {"sent": 2}


def test_moves_follow_the_one_table(db: Database, settings: Settings) -> None:
    assert lifecycle.allowed_moves(EditionStatus.scheduled) == ["send", "cancel"]
    assert lifecycle.allowed_moves(EditionStatus.sending) == ["pause", "cancel"]
    assert lifecycle.allowed_moves(EditionStatus.paused) == ["resume", "cancel"]
    for status in (EditionStatus.sent, EditionStatus.cancelled, EditionStatus.draft):
        assert lifecycle.allowed_moves(status) == []
    made = sending(db, settings, readers=1)
    with pytest.raises(InvalidInput, match=r"^Edition \d+ is sending: it cannot be resumed\.$"):
        lifecycle.resume_edition(db, made.edition_id)
    with pytest.raises(InvalidInput, match=r"is sending: it cannot be sent now\.$"):
        lifecycle.send_draft_now(db, settings, made.edition_id)
    lifecycle.pause_edition(db, made.edition_id)
    lifecycle.resume_edition(db, made.edition_id)
    lifecycle.cancel_edition(db, made.edition_id)
    with pytest.raises(InvalidInput, match=r"is cancelled: it cannot be paused\.$"):
        lifecycle.pause_edition(db, made.edition_id)


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    found: list[object] = []

    def run() -> None:
        try:
            found.append(work())
        except Exception as exc:  # the refusal is the answer looked for
            found.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, found


def test_a_pause_landing_with_the_last_result_finds_it_sent(
    db: Database, settings: Settings
) -> None:
    """The last result's transaction is open (its rows locked) when the pause comes: the
    pause waits for it, then finds the edition sent and says so."""
    made = sending(db, settings, readers=2)
    now = datetime.now(UTC)
    first, last = _claim(db, 2, now)
    with db.session() as session:
        ledger.record_outcomes(session, [_sent(first, now)])
        session.commit()
    with db.session() as session:
        assert ledger.record_outcomes(session, [_sent(last, now)]).closed == (made.edition_id,)
        thread, found = _in_thread(lambda: lifecycle.pause_edition(db, made.edition_id))
        time.sleep(0.5)  # the pause is waiting on the result writer's locks
        assert thread.is_alive()
        session.commit()
    thread.join(10)
    (answer,) = found
    assert isinstance(answer, InvalidInput), answer
    assert str(answer) == f"Edition {made.edition_id} has already been sent."
    assert _edition(db, made.edition_id).status == EditionStatus.sent


def test_the_last_result_landing_after_a_pause_still_closes_it(
    db: Database, settings: Settings
) -> None:
    """The pause's transaction is open when the last result is written: the writer waits,
    then closes the paused edition as sent (it is not left paused forever)."""
    made = sending(db, settings, readers=2)
    now = datetime.now(UTC)
    first, last = _claim(db, 2, now)
    with db.session() as session:
        ledger.record_outcomes(session, [_sent(first, now)])
        session.commit()

    def write_last() -> tuple[int, ...]:
        with db.session() as writer:
            closed = ledger.record_outcomes(writer, [_sent(last, now)]).closed
            writer.commit()
            return closed

    with db.session() as session:
        assert lifecycle._move(session, made.edition_id, "pause")
        thread, found = _in_thread(write_last)
        time.sleep(0.5)
        assert thread.is_alive()
        session.commit()
    thread.join(10)
    assert found == [(made.edition_id,)]
    assert _edition(db, made.edition_id).status == EditionStatus.sent
