"""Hardening: failed editions with a note, console sessions that can be ended at once

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("draft", "skipped", "sending", "paused", "cancelled", "sent")


def _edition_statuses(statuses: tuple[str, ...]) -> None:
    quoted = ", ".join(f"'{status}'" for status in statuses)
    with op.batch_alter_table("editions") as batch:
        batch.drop_constraint(op.f("ck_editions_edition_status"), type_="check")
        batch.create_check_constraint(
            op.f("ck_editions_edition_status"), sa.text(f"status IN ({quoted})")
        )


def upgrade() -> None:
    _edition_statuses((*STATUSES, "failed"))
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("note", sa.Text()))
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
    op.execute("UPDATE editions SET status = 'skipped' WHERE status = 'failed'")
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("note")
    _edition_statuses(STATUSES)
