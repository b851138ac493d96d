"""Weekly digests: a newsletter's weekly schedule, and the cadence of each edition

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("newsletters") as batch:
        batch.add_column(sa.Column("weekly_schedule_cron", sa.String(length=100)))
        batch.drop_column("offers_weekly")
    with op.batch_alter_table("editions") as batch:
        batch.add_column(
            sa.Column(
                "cadence",
                sa.Enum(
                    "daily",
                    "weekly",
                    name="edition_cadence",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=False,
                server_default="daily",
            )
        )
        batch.drop_constraint(op.f("uq_editions_newsletter_id_slot"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_editions_newsletter_id_cadence_slot"), ["newsletter_id", "cadence", "slot"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM editions WHERE cadence = 'weekly'")
    with op.batch_alter_table("editions") as batch:
        batch.drop_constraint(op.f("uq_editions_newsletter_id_cadence_slot"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_editions_newsletter_id_slot"), ["newsletter_id", "slot"]
        )
        batch.drop_constraint(op.f("ck_editions_edition_cadence"), type_="check")
        batch.drop_column("cadence")
    with op.batch_alter_table("newsletters") as batch:
        batch.add_column(
            sa.Column("offers_weekly", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.drop_column("weekly_schedule_cron")
