"""Partial index for leased deliveries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SENDING = sa.text("state = 'sending'")


def upgrade() -> None:
    op.drop_index("ix_deliveries_lease", "deliveries")
    op.create_index(
        "ix_deliveries_leased",
        "deliveries",
        ["lease_expires_at"],
        sqlite_where=SENDING,
        postgresql_where=SENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_leased", "deliveries")
    op.create_index("ix_deliveries_lease", "deliveries", ["state", "lease_expires_at"])
