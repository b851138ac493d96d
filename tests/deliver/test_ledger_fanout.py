"""Fan-out: one queued delivery per active, unsuppressed reader who wants the edition, once."""

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.deliver.ledgerrows import DOMAIN, draft
from tidings.compose.oneoff import schedule_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Cadence,
    Delivery,
    DeliveryState,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.deliver import ledger


def _deliveries(db: Database, edition_id: int) -> dict[int, Delivery]:
    with db.session() as session:
        rows = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id))
        return {d.subscriber_id: d for d in rows if d.subscriber_id is not None}


def test_one_queued_delivery_per_reader_once_with_a_fixed_message_id(
    db: Database, settings: Settings
) -> None:
    made = draft(db, settings, readers=3)
    now = datetime.now(UTC)
    with db.session() as session:
        assert ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, now) == 3
        session.commit()
    with db.session() as session:  # again (a retried start, a second scheduler): nothing new
        assert ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, now) == 0
        session.commit()
    found = _deliveries(db, made.edition_id)
    assert set(found) == set(made.ids.values())
    for delivery in found.values():
        assert (delivery.state, delivery.attempts) == (DeliveryState.queued, 0)
        assert delivery.message_id.startswith(f"<tidings.{made.edition_id}.")
        # The rest is random per delivery: it never names the reader.
        assert re.fullmatch(
            rf"<tidings\.{made.edition_id}\.[0-9a-f]{{32}}@{DOMAIN}>", delivery.message_id
        )
    assert len({d.message_id for d in found.values()}) == 3


def test_message_ids_never_repeat_and_a_reader_s_differ_between_editions(
    db: Database, settings: Settings
) -> None:
    """The random part is drawn afresh for every edition: a reader's two Message-IDs share
    nothing, and no two deliveries' are alike (200 readers, two editions)."""
    made = draft(db, settings, readers=200)
    soon = datetime.now(UTC) + timedelta(hours=2)
    second = schedule_one_off(db, settings, "daily", OneOff(article_ids=[]), soon)
    now = datetime.now(UTC)
    with db.session() as session:
        for edition_id in (made.edition_id, second):
            assert ledger.fan_out(session, edition_id, made.newsletter_id, DOMAIN, now) == 200
        session.commit()
    first, other = _deliveries(db, made.edition_id), _deliveries(db, second)
    token = re.compile(rf"<tidings\.\d+\.([0-9a-f]{{32}})@{re.escape(DOMAIN)}>")
    tokens = {
        reader: [_token(token, d.message_id) for d in (first[reader], other[reader])]
        for reader in made.ids.values()
    }
    assert all(mine[0] != mine[1] for mine in tokens.values())
    assert len({t for pair in tokens.values() for t in pair}) == 400


def _token(pattern: re.Pattern[str], message_id: str) -> str:
    matched = pattern.fullmatch(message_id)
    assert matched is not None, message_id
    return matched.group(1)


def test_left_pending_and_suppressed_readers_get_nothing(db: Database, settings: Settings) -> None:
    made = draft(db, settings, readers=4)
    left, pending, suppressed, kept = made.ids
    with db.session() as session:
        for address, status in [
            (left, SubscriptionStatus.unsubscribed),
            (pending, SubscriptionStatus.pending),
        ]:
            session.execute(
                update(Subscription)
                .where(Subscription.subscriber_id == made.ids[address])
                .values(status=status)
            )
        session.add(Suppression(email=suppressed, reason=SuppressionReason.hard_bounce))
        session.commit()
    with db.session() as session:
        now = datetime.now(UTC)
        assert ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, now) == 1
        session.commit()
    assert set(_deliveries(db, made.edition_id)) == {made.ids[kept]}


def test_sections_and_cadence_choose_the_readers(db: Database, settings: Settings) -> None:
    made = draft(db, settings, readers=4)
    culture, politics, everything, weekly = made.ids.values()
    with db.session() as session:
        for subscriber_id, values in [
            (culture, {"sections": ["Culture"]}),
            (politics, {"sections": ["Culture", "Politics"]}),
            (everything, {"sections": []}),
            (weekly, {"cadence": Cadence.weekly}),
        ]:
            session.execute(
                update(Subscription)
                .where(Subscription.subscriber_id == subscriber_id)
                .values(**values)
            )
        session.commit()
    with db.session() as session:
        now = datetime.now(UTC)
        queued = ledger.fan_out(
            session,
            made.edition_id,
            made.newsletter_id,
            DOMAIN,
            now,
            sections=["Politics"],
            cadence=Cadence.daily,
        )
        session.commit()
    assert queued == 2
    assert set(_deliveries(db, made.edition_id)) == {politics, everything}
