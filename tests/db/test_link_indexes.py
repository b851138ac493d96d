"""What deletes and the upkeep look up is indexed: each foreign key's column leads an index
(deleting the row it names would otherwise scan the whole table once per deleted row), and
the upkeep's prune of rate-limit events reads the old events only, not the whole table."""

from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from tests.plans import blocks, plan_of, statements_of
from tidings.access.ratelimit import LONGEST_WINDOW, prune
from tidings.db.engine import Database
from tidings.db.types import utcnow

#: Links left without an index, and why a scan is acceptable there.
UNINDEXED = {
    # Deleting a newsletter (rare, once per newsletter, not per row of a batch) scans the
    # history once; an index would cost every consent event of a million-row import.
    ("subscriber_events", ("newsletter_id",)): "one scan per deleted newsletter",
}
#: On SQLite only, where deliveries keep the foreign keys that PostgreSQL's triggers replace
#: (the triggers find a variant's deliveries through (edition, variant)).
SQLITE_UNINDEXED = {
    # An edition has a few variants; deleting them scans an embedded database's deliveries
    # once each.
    ("deliveries", ("variant_id",)): "one scan per deleted variant",
}


def _indexed_prefixes(database: Database, table: str) -> set[tuple[str, ...]]:
    """Every column list that leads an index, the primary key or a unique constraint."""
    inspector = inspect(database.engine)
    lists = [tuple(index["column_names"]) for index in inspector.get_indexes(table)]
    lists += [tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)]
    lists.append(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
    return {columns[:n] for columns in lists for n in range(1, len(columns) + 1)}


def test_every_foreign_key_leads_an_index(db: Database) -> None:
    inspector = inspect(db.engine)
    unindexed = set()
    for table in inspector.get_table_names():
        prefixes = _indexed_prefixes(db, table)
        for key in inspector.get_foreign_keys(table):
            columns = tuple(key["constrained_columns"])
            if columns not in prefixes:
                unindexed.add((table, columns))
    allowed = set(UNINDEXED)
    if db.engine.dialect.name == "sqlite":
        allowed |= set(SQLITE_UNINDEXED)
    assert unindexed == allowed


def test_the_prune_of_rate_events_reads_only_the_old_ones(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's buffer counts")
    now = utcnow()
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO rate_events (bucket, at) SELECT 'signup:' || (n % 500), :at"
                " FROM generate_series(1, 100000) AS n"
            ),
            {"at": now},
        )
        connection.execute(text("ANALYZE rate_events"))
    statements = statements_of(db, lambda: prune(db, now + LONGEST_WINDOW - timedelta(hours=1)))
    deletes = [sent for sent in statements if sent[0].lstrip().upper().startswith("DELETE")]
    assert deletes, statements
    for sent in deletes:
        plan = plan_of(db, sent, analyze=True)
        # 100,000 recent events: a scan of the index on (bucket, at) reads over a hundred
        # pages; none is old, and the index on the time alone finds that out in two.
        assert blocks(plan) < 20, plan
    with db.engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM rate_events")).scalar_one()
    assert left == 100000
