"""The digest readers look forward to: sending at each reader's own morning (one scheduled
edition per send time and reader zone), an edition rendered once per distinct choice of
sections (edition variants, a delivery names its variant), article images, the newsletter's
postal address, footer, welcome mail and link tagging, and the welcome mail's claim

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("newsletters") as batch:
        batch.add_column(
            sa.Column("reader_time", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("postal_address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("footer_text", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("welcome_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column("show_images", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("utm_source", sa.String(length=100), nullable=True))
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("image_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("image_width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("image_height", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("image_alt", sa.Text(), nullable=True))
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("welcome_sent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("zone", sa.String(length=64), nullable=False, server_default=""))
        batch.drop_constraint(op.f("uq_editions_newsletter_id_cadence_slot"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_editions_newsletter_id_cadence_slot_zone"),
            ["newsletter_id", "cadence", "slot", "zone"],
        )
    op.create_table(
        "edition_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("choice_key", sa.String(length=64), nullable=False),
        sa.Column("sections", _JSON, nullable=True),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("article_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["editions.id"],
            name=op.f("fk_edition_variants_edition_id_editions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edition_variants")),
        sa.UniqueConstraint(
            "edition_id", "choice_key", name=op.f("uq_edition_variants_edition_id_choice_key")
        ),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("variant_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_deliveries_variant_id_edition_variants"),
            "edition_variants",
            ["variant_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("fk_deliveries_variant_id_edition_variants"), type_="foreignkey")
        batch.drop_column("variant_id")
    op.drop_table("edition_variants")
    op.execute(sa.text("DELETE FROM editions WHERE zone <> ''"))
    with op.batch_alter_table("editions") as batch:
        batch.drop_constraint(op.f("uq_editions_newsletter_id_cadence_slot_zone"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_editions_newsletter_id_cadence_slot"), ["newsletter_id", "cadence", "slot"]
        )
        batch.drop_column("zone")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("welcome_sent_at")
    with op.batch_alter_table("articles") as batch:
        for column in ("image_alt", "image_height", "image_width", "image_url"):
            batch.drop_column(column)
    with op.batch_alter_table("newsletters") as batch:
        for column in (
            "utm_source",
            "show_images",
            "welcome_enabled",
            "footer_text",
            "postal_address",
            "reader_time",
        ):
            batch.drop_column(column)
