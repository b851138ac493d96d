"""Index the subscriptions still waiting for a confirmation mail: pending, never mailed one

The console shows, on every page of its subscriber list, how many pending readers were never
sent a confirmation (:func:`tidings.audience.confirmations.waiting`), and an admin sends them
theirs in batches. The only index with the status held every pending subscription of a
newsletter, and none served the count over all newsletters: each page read all 450,000
subscriptions (6,000 pages). This partial index holds only the waiting ones (3,000 of them
there, 11 pages); a claimed confirmation leaves it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status = 'pending' AND confirmation_sent_at IS NULL"


def upgrade() -> None:
    where = sa.text(WAITING)
    op.create_index(
        "ix_subscriptions_waiting",
        "subscriptions",
        ["newsletter_id", "subscriber_id"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_waiting", table_name="subscriptions")
