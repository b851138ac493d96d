"""Sending limits kept in the database, so that they hold across every worker process on
every host: per relay and per receiving domain, a rate (messages per second, lowered by the
relay's own "slow down" replies and raised again while it stays quiet) and a number of
concurrent connections, each connection held as a leased slot

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_limits",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("per_second", sa.Float(), nullable=True),
        sa.Column("max_connections", sa.Integer(), nullable=True),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("clock", sa.Float(), nullable=True),
        sa.Column("slowed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slow_downs", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_reply", sa.String(length=512), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("scope IN ('relay', 'domain')", name=op.f("ck_send_limits_scope")),
        sa.CheckConstraint(
            "per_second IS NULL OR per_second > 0", name=op.f("ck_send_limits_per_second")
        ),
        sa.CheckConstraint(
            "max_connections IS NULL OR max_connections > 0",
            name=op.f("ck_send_limits_max_connections"),
        ),
        sa.CheckConstraint("rate IS NULL OR rate > 0", name=op.f("ck_send_limits_rate")),
        sa.PrimaryKeyConstraint("scope", "name", name=op.f("pk_send_limits")),
    )
    op.create_table(
        "send_limit_slots",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope", "name"],
            ["send_limits.scope", "send_limits.name"],
            name=op.f("fk_send_limit_slots_scope_send_limits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope", "name", "slot", name=op.f("pk_send_limit_slots")),
    )
    op.create_index(op.f("ix_send_limit_slots_holder"), "send_limit_slots", ["holder"])


def downgrade() -> None:
    op.drop_index(op.f("ix_send_limit_slots_holder"), table_name="send_limit_slots")
    op.drop_table("send_limit_slots")
    op.drop_table("send_limits")
