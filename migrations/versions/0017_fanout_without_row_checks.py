"""The ledger's links to its edition and subscriber kept by set-based triggers, not foreign
keys: a fan-out of a million deliveries no longer runs two foreign-key checks per row

Deleting an edition still deletes its deliveries, and deleting (erasing) a subscriber still
sets their deliveries' subscriber to NULL, each in one statement per DELETE statement. The
fan-out, the one writer of new deliveries, locks the edition (FOR NO KEY UPDATE) and every
subscriber it reads (FOR KEY SHARE) so neither can go while it runs
(tidings.deliver.ledger.fanout); an insert of a delivery naming no edition or no subscriber
is refused by a statement-level check.

PostgreSQL only. SQLite (one process, the embedded default) keeps its foreign keys: its
checks are cheap, and triggers there would name tables that Alembic's batch mode drops and
renames when a later migration rebuilds one, which SQLite refuses.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only READ COMMITTED sees the deliveries a fan-out committed while a DELETE waited on its
# locks; a DELETE under an earlier snapshot would leave them behind, so it is refused.
POSTGRESQL = [
    """
CREATE FUNCTION tidings_editions_gone() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'delete ' || TG_TABLE_NAME || ' in READ COMMITTED: deliveries follow them';
    END IF;
    DELETE FROM deliveries WHERE edition_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER editions_gone AFTER DELETE ON editions REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION tidings_editions_gone()
""",
    """
CREATE FUNCTION tidings_subscribers_gone() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'delete ' || TG_TABLE_NAME || ' in READ COMMITTED: deliveries follow them';
    END IF;
    -- The relay's reply often quotes the address: it goes with the reader.
    UPDATE deliveries SET subscriber_id = NULL, last_reply = NULL
    WHERE subscriber_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER subscribers_gone AFTER DELETE ON subscribers REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION tidings_subscribers_gone()
""",
    """
CREATE FUNCTION tidings_deliveries_added() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM added
        WHERE NOT EXISTS (SELECT 1 FROM editions WHERE editions.id = added.edition_id)
           OR (added.subscriber_id IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM subscribers WHERE subscribers.id = added.subscriber_id))
    ) THEN
        RAISE EXCEPTION 'a delivery names an edition or subscriber that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER deliveries_added AFTER INSERT ON deliveries REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION tidings_deliveries_added()
""",
    # TRUNCATE fires no DELETE trigger; emptying subscribers anonymises every delivery, as
    # the foreign key's cascade did (editions reach deliveries through edition_variants).
    """
CREATE FUNCTION tidings_subscribers_emptied() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE deliveries SET subscriber_id = NULL, last_reply = NULL WHERE subscriber_id IS NOT NULL;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER subscribers_emptied AFTER TRUNCATE ON subscribers
FOR EACH STATEMENT EXECUTE FUNCTION tidings_subscribers_emptied()
""",
]

POSTGRESQL_DOWN = [
    "DROP TRIGGER subscribers_emptied ON subscribers",
    "DROP FUNCTION tidings_subscribers_emptied()",
    "DROP TRIGGER deliveries_added ON deliveries",
    "DROP FUNCTION tidings_deliveries_added()",
    "DROP TRIGGER subscribers_gone ON subscribers",
    "DROP FUNCTION tidings_subscribers_gone()",
    "DROP TRIGGER editions_gone ON editions",
    "DROP FUNCTION tidings_editions_gone()",
]


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        return
    op.drop_constraint(op.f("fk_deliveries_edition_id_editions"), "deliveries", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_deliveries_subscriber_id_subscribers"), "deliveries", type_="foreignkey"
    )
    for statement in POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if _is_sqlite():
        return
    for statement in POSTGRESQL_DOWN:
        op.execute(statement)
    # A row the triggers would have refused or detached cannot come back under a key.
    op.execute(
        "DELETE FROM deliveries d"
        " WHERE NOT EXISTS (SELECT 1 FROM editions e WHERE e.id = d.edition_id)"
    )
    op.execute(
        "UPDATE deliveries d SET subscriber_id = NULL WHERE subscriber_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.id = d.subscriber_id)"
    )
    op.create_foreign_key(
        op.f("fk_deliveries_edition_id_editions"),
        "deliveries",
        "editions",
        ["edition_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_deliveries_subscriber_id_subscribers"),
        "deliveries",
        "subscribers",
        ["subscriber_id"],
        ["id"],
        ondelete="SET NULL",
    )
