"""Web face: confirmation e-mail throttle, scheduled one-off editions, cancelled deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STATES = ("queued", "sending", "sent", "deferred", "failed", "uncertain")
SENDING = sa.text("state = 'sending'")


def _delivery_states(states: tuple[str, ...]) -> None:
    quoted = ", ".join(f"'{state}'" for state in states)
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("ck_deliveries_delivery_state"), type_="check")
        batch.create_check_constraint(
            op.f("ck_deliveries_delivery_state"), sa.text(f"state IN ({quoted})")
        )


def upgrade() -> None:
    _delivery_states((*STATES, "cancelled"))
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("confirmation_sent_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE state = 'cancelled'")
    _delivery_states(STATES)
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("scheduled_for")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("confirmation_sent_at")
