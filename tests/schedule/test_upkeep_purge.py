"""The scheduler's upkeep deletes inbound messages past their retention period, and only
those."""

from datetime import timedelta

from sqlalchemy import select

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import InboundMeaning, InboundMessage
from tidings.db.types import utcnow
from tidings.schedule.scheduler import ledger_upkeep


def test_upkeep_deletes_inbound_messages_past_their_retention(
    db: Database, settings: Settings
) -> None:
    now = utcnow()
    kept_days = settings.inbound_retention_days
    with db.session() as session:
        for age in (kept_days + 1, kept_days + 30, kept_days - 1, 0):
            session.add(
                InboundMessage(
                    channel="pipe",
                    recipient=f"{age}@bounces.example.org",
                    received_at=now - timedelta(days=age),
                    size=1,
                    truncated=False,
                    meaning=InboundMeaning.unknown,
                )
            )
        session.commit()
    assert ledger_upkeep(db, settings) == []
    with db.session() as session:
        left = sorted(session.scalars(select(InboundMessage.recipient)))
    assert left == ["0@bounces.example.org", f"{kept_days - 1}@bounces.example.org"]
