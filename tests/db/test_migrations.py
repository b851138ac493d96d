from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from tidings.db.engine import Database
from tidings.db.migrate import current_revision, downgrade, head_revision, upgrade
from tidings.db.models import Base

#: Kept as foreign keys on SQLite only: migrations 0017 and 0018 put triggers in their place
#: on PostgreSQL (so the models, written for PostgreSQL's fan-out, declare none of them).
SQLITE_ONLY_KEYS = {
    "fk_deliveries_edition_id_editions",
    "fk_deliveries_subscriber_id_subscribers",
    "fk_deliveries_variant_id_edition_variants",
}


def _differences(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        found = list(compare_metadata(context, Base.metadata))
    if database.engine.dialect.name != "sqlite":
        return found
    return [d for d in found if not (d[0] == "remove_fk" and d[1].name in SQLITE_ONLY_KEYS)]


def test_models_and_migrations_agree(db: Database) -> None:
    assert current_revision(db.engine) == head_revision(db.engine)
    assert _differences(db) == []


def test_migrations_run_down_and_up_again(db: Database) -> None:
    downgrade(db.engine, "base")
    tables = set(inspect(db.engine).get_table_names())
    assert tables <= {"alembic_version"}
    upgrade(db.engine)
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert _differences(db) == []
