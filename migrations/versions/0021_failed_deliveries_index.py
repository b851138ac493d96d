"""An index over the refused deliveries of each edition

An edition's bounce list and its counts (the console's edition page) picked the deliveries
refused at send time by reading every delivery of the edition: 387 ms for an edition of
291,000 in a scale audit. The index holds only failed rows: a fan-out writes none, so it
costs the fan-out nothing, and a result write adds an entry only for a refusal.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    where = sa.text("state = 'failed'")
    op.create_index(
        "ix_deliveries_failed",
        "deliveries",
        ["edition_id", "id"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_failed", table_name="deliveries")
