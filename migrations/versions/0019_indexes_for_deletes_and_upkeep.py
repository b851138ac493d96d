"""Indexes for what deletes and the upkeep look up: a row's links to deleted rows, and the
rate-limit events past every window

Deleting a row that other rows point at by a foreign key makes the database find those rows,
once per deleted row; with no index on the pointing column, each is a scan of the whole table.
Two such links had none:

- a subscriber's history event names the inbound message that caused it
  (``subscriber_events.inbound_id``, ON DELETE SET NULL): purging inbound messages past their
  retention (in batches of thousands) read the whole history once per message, about 0.12 s
  per message at a million events, so ten minutes per batch;
- an inbound message names its reader (``inbound_messages.subscriber_id``, ON DELETE SET
  NULL): erasing or bulk-deleting readers read every inbound message once per reader.

Both indexes are partial (only rows that name something): an import's million consent events
name no inbound message and cost nothing more. The scheduler's upkeep also prunes rate-limit
events older than the longest window, whatever their bucket; the only index led with the
bucket, so each prune read the whole table: ``at`` gets its own index.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, column): each partial, over the rows whose column is set.
LINKS = (
    ("ix_subscriber_events_inbound_id", "subscriber_events", "inbound_id"),
    ("ix_inbound_messages_subscriber_id", "inbound_messages", "subscriber_id"),
)


def upgrade() -> None:
    for name, table, column in LINKS:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], postgresql_where=where, sqlite_where=where)
    op.create_index("ix_rate_events_at", "rate_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_rate_events_at", table_name="rate_events")
    for name, table, _column in reversed(LINKS):
        op.drop_index(name, table_name=table)
