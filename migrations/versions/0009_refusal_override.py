"""An editor's resume ends an edition's watch for a mass refusal

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("refusal_watch_ended_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("refusal_watch_ended_at")
