"""The way back: DKIM keys, inbound messages and webhook events, subscriber history, bounce
points, a delivery's feedback and the soft-bounce suppression reason

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_REASONS = ("hard_bounce", "complaint", "erasure", "manual")
NEW_REASONS = ("hard_bounce", "soft_bounce", "complaint", "erasure", "manual")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _reasons(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_constraint(op.f("ck_suppressions_suppression_reason"), type_="check")
        batch.create_check_constraint(
            op.f("ck_suppressions_suppression_reason"),
            sa.column("reason").in_(values),
        )


def upgrade() -> None:
    _reasons(NEW_REASONS)
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("feedback", _enum("delivery_feedback", "bounced", "complained")))
    op.create_index(
        "ix_deliveries_feedback",
        "deliveries",
        ["edition_id", "feedback"],
        sqlite_where=sa.text("feedback IS NOT NULL"),
        postgresql_where=sa.text("feedback IS NOT NULL"),
    )
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("algorithm", _enum("dkim_algorithm", "rsa", "ed25519"), nullable=False),
        sa.Column("private_key_sealed", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain", "selector", name=op.f("uq_dkim_keys_domain_selector")),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column(
            "meaning",
            _enum(
                "inbound_meaning",
                "hard_bounce",
                "soft_bounce",
                "policy",
                "complaint",
                "unsubscribe",
                "auto_reply",
                "unknown",
                "ignored",
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("recipient_domain", sa.String(length=253), nullable=True),
        sa.Column("changes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_inbound_messages_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_inbound_messages_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_inbound_messages_provider_event_id")
        ),
    )
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.create_index("ix_inbound_messages_delivery_id", "inbound_messages", ["delivery_id"])
    op.create_table(
        "subscriber_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            _enum(
                "history_kind",
                "suppressed",
                "unsuppressed",
                "unsubscribed",
                "resubscribed",
                "bounce_point",
            ),
            nullable=False,
        ),
        sa.Column("newsletter_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "inbound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriber_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["newsletter_id"],
            ["newsletters.id"],
            name=op.f("fk_subscriber_events_newsletter_id_newsletters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_subscriber_events_inbound_id_inbound_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_events")),
    )
    op.create_index(
        "ix_subscriber_events_subscriber_id", "subscriber_events", ["subscriber_id", "id"]
    )
    op.create_table(
        "bounce_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_points")),
        sa.UniqueConstraint("email", "day", name=op.f("uq_bounce_points_email_day")),
    )


def downgrade() -> None:
    op.drop_table("bounce_points")
    op.drop_index("ix_subscriber_events_subscriber_id", table_name="subscriber_events")
    op.drop_table("subscriber_events")
    op.drop_index("ix_inbound_messages_delivery_id", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_received_at", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_table("dkim_keys")
    op.drop_index("ix_deliveries_feedback", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("ck_deliveries_delivery_feedback"), type_="check")
        batch.drop_column("feedback")
    op.execute("UPDATE suppressions SET reason = 'hard_bounce' WHERE reason = 'soft_bounce'")
    _reasons(OLD_REASONS)
