"""A console editors can trust: scheduled editions have a status of their own, the
subscriber history holds every consent event with its source, and each newsletter keeps the
origins whose embedded form signs up in one step

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EDITION_STATUSES = ("draft", "skipped", "sending", "paused", "cancelled", "sent", "failed")
HISTORY_KINDS = ("suppressed", "unsuppressed", "unsubscribed", "resubscribed", "bounce_point")
NEW_HISTORY_KINDS = ("signed_up", "added", "imported", "confirmed", "confirm_mailed", "edited")


def _allow(table: str, constraint: str, column: str, values: tuple[str, ...]) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(constraint), type_="check")
        batch.create_check_constraint(op.f(constraint), sa.column(column).in_(values))


def upgrade() -> None:
    _allow("editions", "ck_editions_edition_status", "status", (*EDITION_STATUSES, "scheduled"))
    # A draft with a time set was the old way of saying "scheduled".
    op.execute(
        "UPDATE editions SET status = 'scheduled' "
        "WHERE status = 'draft' AND scheduled_for IS NOT NULL"
    )
    _allow(
        "subscriber_events",
        "ck_subscriber_events_history_kind",
        "kind",
        (*HISTORY_KINDS, *NEW_HISTORY_KINDS),
    )
    with op.batch_alter_table("subscriber_events") as batch:
        batch.add_column(sa.Column("source", sa.String(length=32), nullable=True))
    with op.batch_alter_table("newsletters") as batch:
        batch.add_column(
            sa.Column(
                "allowed_origins",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("newsletters") as batch:
        batch.drop_column("allowed_origins")
    events = sa.table("subscriber_events", sa.column("kind", sa.String))
    op.execute(events.delete().where(events.c.kind.in_(NEW_HISTORY_KINDS)))
    with op.batch_alter_table("subscriber_events") as batch:
        batch.drop_column("source")
    _allow("subscriber_events", "ck_subscriber_events_history_kind", "kind", HISTORY_KINDS)
    op.execute("UPDATE editions SET status = 'draft' WHERE status = 'scheduled'")
    _allow("editions", "ck_editions_edition_status", "status", EDITION_STATUSES)
