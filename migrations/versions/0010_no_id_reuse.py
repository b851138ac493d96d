"""Ids that are credentials are never given out twice (SQLite AUTOINCREMENT)

A reader's signed link names a subscription id, a console session a user id. SQLite's plain
INTEGER PRIMARY KEY hands the highest id out again once its row is deleted, so an erased
person's old links opened the next person's preference centre. AUTOINCREMENT keeps the
highest id ever used in ``sqlite_sequence``. PostgreSQL sequences never go back: nothing to do.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("subscribers", "subscriptions", "users", "api_tokens")


def _recreate(autoincrement: bool) -> None:
    kwargs = {"sqlite_autoincrement": True} if autoincrement else {}
    # Foreign keys are off (and checked afterwards) for every SQLite migration: env.py.
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs):
            pass
        if autoincrement:
            # The copy keeps the ids, and SQLite moves the sequence up to the highest; said
            # once more here so an id in use can never be handed out.
            op.execute(
                f"UPDATE sqlite_sequence SET seq = max(seq, "  # noqa: S608 (fixed names)
                f"(SELECT coalesce(max(id), 0) FROM {table})) WHERE name = '{table}'"
            )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(autoincrement=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(autoincrement=False)
