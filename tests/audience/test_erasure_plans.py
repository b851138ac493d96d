"""An erasure finds what came back about the reader through indexes: it runs per request
and per bulk action, and the inbound messages grow with the retention period."""

import pytest
from sqlalchemy import text

from tests.plans import plan_of, seq_scanned, statements_of
from tidings.audience.subscribers import erase
from tidings.db.engine import Database


def test_erasure_clears_inbound_messages_through_their_indexes(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's plans")
    with db.engine.begin() as connection:
        reader = connection.execute(
            text(
                "INSERT INTO subscribers (email, attributes, created_at, updated_at)"
                " VALUES ('gone@example.org', '{}'::jsonb, now(), now()) RETURNING id"
            )
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO inbound_messages (channel, received_at, size, truncated, meaning,"
                " subscriber_id, raw) SELECT 'pipe', now(), 0, false, 'hard_bounce',"
                " CASE WHEN g % 1000 = 0 THEN :reader END, 'about someone'::bytea"
                " FROM generate_series(1, 20000) AS g"
            ),
            {"reader": reader},
        )
        connection.execute(text("ANALYZE inbound_messages"))
    sent = statements_of(db, lambda: erase(db, reader), "UPDATE inbound_messages")
    assert sent
    for statement in sent:
        assert "inbound_messages" not in seq_scanned(plan_of(db, statement)), statement
    with db.engine.connect() as connection:
        kept = connection.execute(
            text("SELECT count(*) FROM inbound_messages WHERE raw IS NOT NULL")
        ).scalar_one()
    assert kept == 20000 - 20  # its 20 messages cleared, nobody else's
