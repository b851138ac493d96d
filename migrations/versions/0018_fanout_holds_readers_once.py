"""A fan-out holds the readers with one lock instead of one row lock per reader, and a
delivery's variant is checked per statement instead of per row

Migration 0017 made the fan-out lock every subscriber it read (FOR KEY SHARE), so that an
erasure could not take a reader away before the new deliveries were there to anonymise: a
million rows locked, each a write and a WAL record, about a quarter of a big fan-out's time.
Now whatever writes a delivery's links (the fan-out's INSERT, an UPDATE of a link) first takes
one shared advisory lock for its transaction (``tidings_hold_links()``), and deleting
subscribers or variants takes the same lock exclusively before it anonymises or detaches
deliveries: a DELETE that overlaps a fan-out waits for it to commit, then sees its rows; a
fan-out that starts after a DELETE waits for it to commit, then no longer sees what it
deleted. Links are written in READ COMMITTED only: a transaction on an older snapshot would
still see the deleted rows after the wait, so it is refused.

The deliveries' variant foreign key goes the way of the other two (0017): its check fired
once per inserted row, even for the NULL most rows carry. The insert check now also refuses a
variant that is not one of the delivery's own edition's; deleting variants sets their
deliveries' variant to NULL, once per statement. An UPDATE that points a delivery at another
edition, subscriber or variant is checked row by row (nothing in Tidings does; the foreign
keys checked it, so the triggers do too). With no foreign key left on deliveries, TRUNCATE of
editions or variants no longer reaches them by CASCADE: their TRUNCATE triggers do it.

PostgreSQL only (SQLite keeps its foreign keys and has one writer at a time).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The advisory lock's key: writers of deliveries' links hold it shared, deleting subscribers
#: or variants exclusively (one key in PostgreSQL's advisory locks: "tidn" and 1, two int4).
LINKS_LOCK = "1953064046, 1"

DELIVERIES_ADDED = """
CREATE OR REPLACE FUNCTION tidings_deliveries_added() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM added
        WHERE NOT EXISTS (SELECT 1 FROM editions WHERE editions.id = added.edition_id)
           OR (added.subscriber_id IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM subscribers WHERE subscribers.id = added.subscriber_id))
           OR (added.variant_id IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM edition_variants v
                   WHERE v.id = added.variant_id AND v.edition_id = added.edition_id))
    ) THEN
        RAISE EXCEPTION 'a delivery names an edition, subscriber or variant that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$
"""

DELIVERIES_ADDED_0017 = """
CREATE OR REPLACE FUNCTION tidings_deliveries_added() RETURNS trigger LANGUAGE plpgsql
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
"""


#: What 0017's subscribers_gone did before anonymising; 0018 calls tidings_take_links().
ISOLATION_CHECK_0017 = """
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'delete ' || TG_TABLE_NAME || ' in READ COMMITTED: deliveries follow them';
    END IF;"""


def _subscribers_gone(first: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION tidings_subscribers_gone() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN{first}
    -- The relay's reply often quotes the address: it goes with the reader.
    UPDATE deliveries SET subscriber_id = NULL, last_reply = NULL
    WHERE subscriber_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$
"""  # noqa: S608 (first is one of two constants of this file)


POSTGRESQL = [
    f"""
CREATE FUNCTION tidings_hold_links() RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'write deliveries in READ COMMITTED: an older snapshot may still see '
                || 'readers or variants deleted since';
    END IF;
    PERFORM pg_advisory_xact_lock_shared({LINKS_LOCK});
END $$
""",
    # Every trigger that deletes what deliveries name calls this first: it waits for every
    # writer of links under way to commit, and its UPDATE or DELETE after it (a new snapshot,
    # in READ COMMITTED; an older one would miss their rows, so it is refused) sees them.
    f"""
CREATE FUNCTION tidings_take_links() RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'delete what deliveries name in READ COMMITTED: deliveries follow them';
    END IF;
    PERFORM pg_advisory_xact_lock({LINKS_LOCK});
END $$
""",
    _subscribers_gone("\n    PERFORM tidings_take_links();"),
    DELIVERIES_ADDED,
    """
CREATE FUNCTION tidings_variants_gone() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM tidings_take_links();
    UPDATE deliveries SET variant_id = NULL
    WHERE edition_id IN (SELECT edition_id FROM gone) AND variant_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER variants_gone AFTER DELETE ON edition_variants REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION tidings_variants_gone()
""",
    """
CREATE FUNCTION tidings_delivery_relinked() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM tidings_hold_links();
    -- As the fan-out does: the edition's row is held, so its DELETE waits for this.
    PERFORM 1 FROM editions WHERE id = NEW.edition_id FOR KEY SHARE;
    IF NOT FOUND
       OR (NEW.subscriber_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM subscribers WHERE id = NEW.subscriber_id))
       OR (NEW.variant_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM edition_variants
               WHERE id = NEW.variant_id AND edition_id = NEW.edition_id))
    THEN
        RAISE EXCEPTION 'a delivery names an edition, subscriber or variant that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$
""",
    # Only when a link changes to something (setting one to NULL, as an erasure does, needs
    # no check): the sending path's UPDATEs never name these columns and never fire it.
    """
CREATE TRIGGER deliveries_relinked AFTER UPDATE OF edition_id, subscriber_id, variant_id
ON deliveries FOR EACH ROW
WHEN (NEW.edition_id IS DISTINCT FROM OLD.edition_id
      OR (NEW.subscriber_id IS NOT NULL AND NEW.subscriber_id IS DISTINCT FROM OLD.subscriber_id)
      OR (NEW.variant_id IS NOT NULL AND NEW.variant_id IS DISTINCT FROM OLD.variant_id))
EXECUTE FUNCTION tidings_delivery_relinked()
""",
    # TRUNCATE fires no DELETE trigger, and deliveries no longer have a foreign key that
    # would make TRUNCATE ... CASCADE reach them: emptying editions or variants does it here.
    """
CREATE FUNCTION tidings_editions_emptied() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM tidings_take_links();
    DELETE FROM deliveries;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER editions_emptied AFTER TRUNCATE ON editions
FOR EACH STATEMENT EXECUTE FUNCTION tidings_editions_emptied()
""",
    """
CREATE FUNCTION tidings_variants_emptied() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM tidings_take_links();
    UPDATE deliveries SET variant_id = NULL WHERE variant_id IS NOT NULL;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER variants_emptied AFTER TRUNCATE ON edition_variants
FOR EACH STATEMENT EXECUTE FUNCTION tidings_variants_emptied()
""",
]

POSTGRESQL_DOWN = [
    "DROP TRIGGER variants_emptied ON edition_variants",
    "DROP FUNCTION tidings_variants_emptied()",
    "DROP TRIGGER editions_emptied ON editions",
    "DROP FUNCTION tidings_editions_emptied()",
    "DROP TRIGGER deliveries_relinked ON deliveries",
    "DROP FUNCTION tidings_delivery_relinked()",
    "DROP TRIGGER variants_gone ON edition_variants",
    "DROP FUNCTION tidings_variants_gone()",
    DELIVERIES_ADDED_0017,
    _subscribers_gone(ISOLATION_CHECK_0017),
    "DROP FUNCTION tidings_take_links()",
    "DROP FUNCTION tidings_hold_links()",
]


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        return
    op.drop_constraint(
        op.f("fk_deliveries_variant_id_edition_variants"), "deliveries", type_="foreignkey"
    )
    for statement in POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if _is_sqlite():
        return
    for statement in POSTGRESQL_DOWN:
        op.execute(statement)
    op.execute(
        "UPDATE deliveries d SET variant_id = NULL WHERE variant_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM edition_variants v WHERE v.id = d.variant_id)"
    )
    op.create_foreign_key(
        op.f("fk_deliveries_variant_id_edition_variants"),
        "deliveries",
        "edition_variants",
        ["variant_id"],
        ["id"],
        ondelete="SET NULL",
    )
