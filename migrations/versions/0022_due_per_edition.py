"""Due deliveries are found edition by edition

Claims and the question "is anything due" (every few seconds per worker, and every
readiness check) took due deliveries from the index (state, next attempt) and joined them to
their editions: while a big edition was paused, its queue came first and was read whole on
every claim (270 ms a claim beside a paused million; about 600 pages per question beside a
paused 30,000). The index now holds only the rows waiting for a worker (queued or deferred),
by edition and next attempt, and each sending edition is asked for its own earliest due rows;
a small partial index finds the sending editions. A fan-out writes the same number of index
entries as before; a claimed row's new version is not in the index, so once vacuumed it
holds only what is still to send.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    due = sa.text("state IN ('queued', 'deferred')")
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["edition_id", "next_attempt_at"],
        postgresql_where=due,
        sqlite_where=due,
    )
    sending = sa.text("status = 'sending'")
    op.create_index(
        "ix_editions_sending", "editions", ["id"], postgresql_where=sending, sqlite_where=sending
    )


def downgrade() -> None:
    op.drop_index("ix_editions_sending", table_name="editions")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at"])
